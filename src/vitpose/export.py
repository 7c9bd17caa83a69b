"""Export to ONNX: one graph `pixel_values (batch, 3, H, W) -> heatmaps (batch, K, H/4, W/4)` with a dynamic batch.

A ViTPose++ model is exported for one data set, with that data set's expert folded into the MLP and its head as the
only head (`VitPoseForPoseEstimation.fold_experts`): the graph is a plain ViT, as fast as a dense one. A dense
model with several heads (COCO+AiC+MPII) exports the head of the chosen data set. The flip test is not in the graph:
`vitpose.inference.backends.onnx.OnnxPoseModel` runs the mirrored crops in the same batch and flips back.

The model's config (of the exported, folded model) travels in the ONNX metadata (`vitpose_config`), so the file is
all `OnnxPoseModel` needs.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitpose.errors import MissingDependencyError
from vitpose.models.pose import VitPoseForPoseEstimation

CONFIG_KEY = "vitpose_config"
DATASET_KEY = "vitpose_dataset_index"
INPUT_NAME = "pixel_values"
OUTPUT_NAME = "heatmaps"
DEFAULT_OPSET = 17


class _HeatmapGraph(nn.Module):
    """What is exported: the backbone and one head, no Python-level choices left."""

    def __init__(self, model: VitPoseForPoseEstimation, dataset_index: int) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.head = model.head_for(dataset_index) if model.config.num_heads > 1 else model.keypoint_head

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(pixel_values))


@dataclass
class OnnxExport:
    """What `export_onnx` wrote: the file, the data set it serves, and the check against PyTorch."""

    path: Path
    dataset_index: int
    num_keypoints: int
    max_abs_diff: float | None  # max |ONNX Runtime - PyTorch| on random crops; None when not checked

    def __str__(self) -> str:
        check = "" if self.max_abs_diff is None else f", max |onnxruntime - torch| = {self.max_abs_diff:.2e}"
        return f"{self.path} (dataset_index {self.dataset_index}, {self.num_keypoints} keypoints{check})"


def _resolve_index(model: VitPoseForPoseEstimation, dataset: int | str | None) -> int:
    if dataset is None:
        return 0
    if isinstance(dataset, str) and not dataset.isdigit():
        from vitpose.datasets import get_dataset_info

        index = get_dataset_info(dataset).dataset_index
    else:
        index = int(dataset)
    model.config.check_dataset_index(index, dataset=dataset)
    return index


def prepare_for_export(
    model: VitPoseForPoseEstimation, dataset: int | str | None = None
) -> tuple[VitPoseForPoseEstimation, int]:
    """The dense CPU float32 model that is exported, and the data-set index it serves.

    ViTPose++ models are folded for `dataset` (default COCO); the original model is left untouched.
    """
    index = _resolve_index(model, dataset)
    dense = model.fold_experts(index) if model.is_moe else model
    if dense.device.type != "cpu" or dense.dtype != torch.float32:
        dense = copy.deepcopy(dense).to("cpu", torch.float32)
    return dense.eval(), index


def export_onnx(
    model: VitPoseForPoseEstimation,
    path: str | os.PathLike[str],
    dataset: int | str | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
) -> OnnxExport:
    """Write `model` as an ONNX graph with a dynamic batch axis.

    Args:
        model: a loaded `VitPoseForPoseEstimation` (any device and dtype; exported as float32).
        path: the `.onnx` file to write (models over 2 GB keep their weights in external data files beside it).
        dataset: ViTPose++ (or multi-head) models: the data set to serve, a name or index (default COCO, 0).
        opset: ONNX opset version (17: LayerNorm as one op).
        check: run the file with ONNX Runtime on random crops (batches 1 and 2, when it is installed) and report
            the largest difference from PyTorch.

    Returns:
        `OnnxExport` with the path, the data-set index and the check's max abs difference.
    """
    dense, index = prepare_for_export(model, dataset)
    graph = _HeatmapGraph(dense, 0 if model.is_moe else index).eval()
    bb = dense.config.backbone_config
    example = torch.randn(2, bb.num_channels, *bb.image_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice and tracer warnings
        with torch.no_grad():
            torch.onnx.export(
                graph,
                (example,),
                str(path),
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
                do_constant_folding=True,
            )
    config = copy.deepcopy(dense.config)
    if model.is_moe:
        config.extra["folded_dataset_index"] = index
    served = 0 if model.is_moe else index  # the served head's index in the exported config
    if config.flip_pairs is None and not config.has_own_head(served):
        # Make the file self-contained: the pairs the PyTorch model's flip test would use for this data set (an
        # extra head of a dense multi-head model keeps the registry's, `VitPoseConfig.flip_pairs_for`).
        try:
            config.flip_pairs = model.flip_pairs_for(index).tolist()
        except ValueError:
            pass  # a custom keypoint layout without pairs: the flip test then needs flip_pairs=...
    _write_metadata(path, {CONFIG_KEY: config.to_json_string(), DATASET_KEY: str(index)})
    diff = _check(graph, path, example) if check else None
    return OnnxExport(path=path, dataset_index=index, num_keypoints=graph.head.num_keypoints, max_abs_diff=diff)


def _write_metadata(path: Path, entries: dict[str, str]) -> None:
    try:
        import onnx
    except ImportError as err:
        raise MissingDependencyError("exporting to ONNX needs the onnx package: pip install onnx onnxruntime") from err
    proto = onnx.load(str(path), load_external_data=False)  # weights over 2 GB stay in their external files
    for key, value in entries.items():
        item = proto.metadata_props.add()
        item.key, item.value = key, value
    onnx.save(proto, str(path))


def _check(graph: nn.Module, path: Path, example: torch.Tensor) -> float | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    with torch.no_grad():
        for batch in (example[:1], example):
            got = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: batch.numpy()})[0])
            want = graph(batch)
            finite = torch.isfinite(want)
            if not torch.equal(finite, torch.isfinite(got)):
                return float("inf")  # NaN or inf in one output only
            if finite.any():  # (NaN where both are NaN, e.g. a checkpoint with invalid BatchNorm statistics)
                worst = max(worst, float((got - want)[finite].abs().max()))
    return worst


def read_metadata(session: Any) -> tuple[dict[str, Any] | None, int]:
    """The vitpose entries of an ONNX Runtime session's model metadata: the config dict (None if absent) and the
    data-set index the graph serves."""
    meta = session.get_modelmeta().custom_metadata_map
    config = json.loads(meta[CONFIG_KEY]) if CONFIG_KEY in meta else None
    return config, int(meta.get(DATASET_KEY, 0))
