"""The import paths of the previous release keep working for one release: each old module re-exports the very same
objects from their new home."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("vitpose.codec", "vitpose.ops.codec", ["UDPHeatmapCodec", "flip_back", "refine_dark_udp"]),
        ("vitpose.transforms", "vitpose.ops.geometry", ["box_to_center_scale", "crop_boxes", "get_udp_warp_matrices"]),
        ("vitpose.evaluation.oks", "vitpose.ops.oks", ["oks_matrix", "oks_nms"]),
        ("vitpose.results", "vitpose.inference.results", ["PoseResult", "instance_scores"]),
        ("vitpose.pipeline", "vitpose.inference.estimator", ["PoseEstimator"]),
        ("vitpose.pipeline", "vitpose.media", ["load_image", "expand_inputs", "FailedImage", "IMAGE_SUFFIXES"]),
        ("vitpose.backends", "vitpose.inference.backends", ["quantize_int8"]),
        ("vitpose.backends.onnx", "vitpose.inference.backends.onnx", ["OnnxPoseModel", "quantize_onnx_int8"]),
        ("vitpose.training.loss", "vitpose.models.loss", ["heatmap_mse_loss"]),
        ("vitpose.training.dataset_info", "vitpose.datasets.custom", ["load_dataset_info", "resolve_dataset_info"]),
        ("vitpose.checkpoints", "vitpose.hub", ["resolve_file", "is_hub_id"]),
        ("vitpose.evaluation", "vitpose.ops.oks", ["oks_matrix", "oks_nms"]),
    ],
)
def test_old_path_reexports_the_same_object(old, new, names):
    import importlib

    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name), f"{old}.{name}"


@pytest.mark.slow
def test_python_dash_m_vitpose_is_the_cli():
    import subprocess
    import sys

    for module in ("vitpose", "vitpose.cli"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith("vitpose "), (module, proc.stderr)
