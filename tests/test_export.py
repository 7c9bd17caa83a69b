"""ONNX export (dynamic batch, ViTPose++ folded), the ONNX Runtime back-end in the estimator, `vitpose export` through
`cli_export.add_parser`, and the int8 back-ends (run, and their deviation reported, not hidden)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from conftest import make_hf_model, save_hf
from vitpose import VitPoseForPoseEstimation, VitPoseImageProcessor
from vitpose.config import VitPoseConfig
from vitpose.inference.backends import quantize_int8

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from vitpose.cli.export import add_parser  # noqa: E402
from vitpose.export import export_onnx  # noqa: E402
from vitpose.inference.backends.onnx import OnnxPoseModel, quantize_onnx_int8  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def dense_dir(tmp_path_factory):
    return save_hf(make_hf_model(simple=True), tmp_path_factory.mktemp("dense") / "model")


@pytest.fixture(scope="module")
def plus_model():
    """A tiny ViTPose++ with every data set's head (as an original .pth has), classic decoder, non-trivial BN."""
    config = VitPoseConfig(
        backbone_config={
            "hidden_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_experts": 6,
            "part_features": 24,
        },
        num_labels=17,
        use_simple_decoder=False,
        associate_num_labels=[14, 16, 17, 17, 133],
    )
    torch.manual_seed(0)
    model = VitPoseForPoseEstimation(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.bias.normal_(0, 0.1)
    return model


def _crops(n: int) -> torch.Tensor:
    return torch.randn(n, 3, 256, 192, generator=torch.Generator().manual_seed(n))


def test_dense_export_dynamic_batch_agrees_with_pytorch(dense_dir, tmp_path):
    model = VitPoseForPoseEstimation.from_pretrained(dense_dir)
    result = export_onnx(model, tmp_path / "dense.onnx")
    assert result.path.is_file() and result.dataset_index == 0 and result.num_keypoints == 17
    assert result.max_abs_diff is not None and result.max_abs_diff <= TOL
    onnx_model = OnnxPoseModel(result.path)
    assert onnx_model.config.num_labels == 17 and not onnx_model.is_moe
    assert onnx_model.device == torch.device("cpu") and onnx_model.dtype == torch.float32
    for batch in (1, 3):
        pixel_values = _crops(batch)
        with torch.no_grad():
            want = model(pixel_values).heatmaps
            want_flip = model(pixel_values, flip_test=True).heatmaps
        got = onnx_model(pixel_values).heatmaps
        assert got.shape == want.shape == (batch, 17, 64, 48)
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)
        torch.testing.assert_close(onnx_model(pixel_values, flip_test=True).heatmaps, want_flip, atol=TOL, rtol=0)
    assert onnx_model(torch.zeros(0, 3, 256, 192)).heatmaps.shape == (0, 17, 64, 48)


@pytest.mark.parametrize(("dataset", "index", "keypoints"), [("coco", 0, 17), ("mpii", 2, 16), ("wholebody", 5, 133)])
def test_vitpose_plus_export_folds_the_data_set(plus_model, tmp_path, dataset, index, keypoints):
    result = export_onnx(plus_model, tmp_path / f"{dataset}.onnx", dataset=dataset)
    assert result.dataset_index == index and result.num_keypoints == keypoints
    onnx_model = OnnxPoseModel(result.path)
    assert onnx_model.dataset_index == index and onnx_model.config.num_labels == keypoints
    assert not onnx_model.config.backbone_config.is_moe  # the expert is folded in: a dense graph
    for batch in (1, 3):
        pixel_values = _crops(batch)
        with torch.no_grad():
            want = plus_model(pixel_values, dataset_index=index).heatmaps
            want_flip = plus_model(pixel_values, dataset_index=index, flip_test=True).heatmaps
        got = onnx_model(pixel_values, dataset_index=index).heatmaps
        torch.testing.assert_close(got, want, atol=TOL, rtol=0)
        flipped = onnx_model(pixel_values, dataset_index=dataset, flip_test=True).heatmaps
        torch.testing.assert_close(flipped, want_flip, atol=TOL, rtol=0)
    with pytest.raises(ValueError, match=f"serves dataset_index {index} only"):
        onnx_model(_crops(1), dataset_index=(index + 1) % 6)


def test_onnx_model_runs_in_the_estimator(dense_dir, tmp_path):
    from vitpose.inference.estimator import PoseEstimator

    model = VitPoseForPoseEstimation.from_pretrained(dense_dir)
    path = export_onnx(model, tmp_path / "m.onnx", check=False).path
    processor = VitPoseImageProcessor()
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    boxes = [[20.0, 30.0, 100.0, 200.0], [200.0, 50.0, 80.0, 150.0], [300.0, 100.0, 90.0, 180.0]]
    for flip in (False, True):
        want = PoseEstimator(model, processor, detector="full-image", flip_test=flip)(image, boxes=boxes)
        got = PoseEstimator(OnnxPoseModel(path), processor, detector="full-image", flip_test=flip)(image, boxes=boxes)
        np.testing.assert_allclose(got.keypoint_scores, want.keypoint_scores, atol=TOL)
        close = np.abs(got.keypoints - want.keypoints).max(axis=-1) <= 1e-2
        assert close.mean() >= 0.95  # a near-tie argmax may flip on random weights; nearly all keypoints agree


def test_onnx_model_errors(dense_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="vitpose export onnx"):
        OnnxPoseModel(tmp_path / "missing.onnx")
    model = VitPoseForPoseEstimation.from_pretrained(dense_dir)
    onnx_model = OnnxPoseModel(export_onnx(model, tmp_path / "m.onnx", check=False).path)
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(batch, 3, 256, 192\)"):
        onnx_model(torch.zeros(1, 3, 128, 96))
    with pytest.raises(ValueError, match="does not support"):
        onnx_model(_crops(1), output_hidden_states=True)
    with pytest.raises(ValueError, match="not served by this model"):
        export_onnx(model, tmp_path / "x.onnx", dataset="wholebody")


def test_cli_export_through_add_parser(dense_dir, plus_model, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="vitpose")
    add_parser(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "cli.onnx"
    args = parser.parse_args(["export", "onnx", "--model", str(dense_dir), "--out", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "wrote" in printed and "max |onnxruntime - torch|" in printed
    assert OnnxPoseModel(out).config.num_labels == 17
    pixel_values = _crops(2)
    with torch.no_grad():  # the file computes the checkpoint's heatmaps
        want = VitPoseForPoseEstimation.from_pretrained(dense_dir)(pixel_values).heatmaps
    torch.testing.assert_close(OnnxPoseModel(out)(pixel_values).heatmaps, want, atol=TOL, rtol=0)

    plus_dir = tmp_path / "plus"
    plus_model.save_pretrained(plus_dir)
    out = tmp_path / "ap10k.onnx"
    args = parser.parse_args(
        ["export", "onnx", "--model", str(plus_dir), "--out", str(out), "--dataset", "3", "--int8"]
    )
    assert args.func(args) == 0
    assert OnnxPoseModel(out).dataset_index == 3
    assert OnnxPoseModel(tmp_path / "ap10k.int8.onnx").dataset_index == 3
    with torch.no_grad():  # --dataset 3 folds AP-10K's expert and head: its heatmaps, not another data set's
        want = plus_model(pixel_values, dataset_index=3).heatmaps
        other = plus_model(pixel_values, dataset_index=0).heatmaps
    got = OnnxPoseModel(out)(pixel_values, dataset_index=3).heatmaps
    torch.testing.assert_close(got, want, atol=TOL, rtol=0)
    assert (other - want).abs().max() > 100 * TOL
    got_int8 = OnnxPoseModel(tmp_path / "ap10k.int8.onnx")(pixel_values, dataset_index=3).heatmaps
    assert 0 < float((got_int8 - want).abs().max()) <= 0.1 * float(want.abs().max())
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "tflite", "--model", str(dense_dir), "--out", str(out)])
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "onnx", "--out", str(out)])  # --model is required


def test_int8_back_ends_run_and_report_their_deviation(dense_dir, tmp_path):
    """int8 is an approximation: it must run, keep the output shape, and stay near float32 (a loose bound on random
    weights: the benchmark reports the measured deviation)."""
    model = VitPoseForPoseEstimation.from_pretrained(dense_dir)
    pixel_values = _crops(3)
    with torch.no_grad():
        want = model(pixel_values).heatmaps
        torch_int8 = quantize_int8(model)(pixel_values).heatmaps
    onnx_int8 = OnnxPoseModel(quantize_onnx_int8(export_onnx(model, tmp_path / "m.onnx", check=False).path))
    got_onnx = onnx_int8(pixel_values).heatmaps
    scale = float(want.abs().max())
    for got in (torch_int8, got_onnx):
        assert got.shape == want.shape and torch.isfinite(got).all()
        deviation = float((got - want).abs().max())
        assert 0 < deviation <= 0.1 * scale, deviation  # changed (it is int8), but only slightly
    assert type(model.backbone.blocks[0].attn.qkv) is torch.nn.Linear  # the float model is left untouched
    with pytest.raises(ValueError, match="runs on the CPU in float32"):
        quantize_int8(model.to(torch.float64))


def test_onnx_threads_do_not_spin_unless_asked(dense_dir, tmp_path):
    """Spinning ONNX Runtime threads would take a core from the crops and the decoding that follow the network."""
    model = VitPoseForPoseEstimation.from_pretrained(dense_dir)
    path = export_onnx(model, tmp_path / "m.onnx", check=False).path
    key = "session.intra_op.allow_spinning"
    assert OnnxPoseModel(path).session.get_session_options().get_session_config_entry(key) == "0"
    assert OnnxPoseModel(path, spin=True).session.get_session_options().get_session_config_entry(key) == "1"
