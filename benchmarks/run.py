#!/usr/bin/env python
"""vitpose vs transformers' ViTPose, side by side in one process, on identical weights and inputs.

    python benchmarks/run.py              # ViT-S, ViT-B (simple decoder), ViTPose++-B; batches 1 and 8 (minutes)
    python benchmarks/run.py --quick      # tiny models, a few repeats: keeps the script working (CI, < 30 s)

Measured: pre-processing (crops per second), the network, decoding, and the whole pose stage given boxes
(pre-processing + network + decoding of N boxes on one image, through the transformers-compatible API on both
sides); the machine's own float32 matrix-multiply rate, and the network's efficiency = analytic FLOPs / time /
that rate; the optional back-ends (ONNX Runtime float32 and int8, PyTorch int8) with the change in output they
cause; and the peak memory of loading a ViT-H-sized checkpoint. Weights are random (speed does not depend on their
values) unless --checkpoint names real ones.

Timing: after warm-up, each repetition runs the two contenders back to back; a figure is the median over
repetitions and a ratio is the median of the per-repetition ratios (transformers time / vitpose time, so > 1 means
vitpose is faster), which cancels most of the drift of a machine shared with other jobs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py, also when loaded as a module
from machine import cpu_model, load_average, module_versions, quiet

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = ROOT.parent / "shared" / "data" / "coco" / "000000196141.jpg"
TARGETS = {"preprocess": 20.0, "decode": 5.0, "stage": 1.3, "efficiency": 0.80, "backend": 1.4, "memory": 1.3}


# --------------------------------------------------------------------------------------------- settings
@dataclass
class ModelSpec:
    """A benchmarked network: transformers config values (random weights) or a real checkpoint."""

    name: str
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    num_experts: int = 1
    part_features: int = 192
    simple: bool = True
    checkpoint: str | None = None


FULL_SPECS = [
    ModelSpec("ViT-S simple", 384, 12, 12, 1, 96, True),
    ModelSpec("ViT-B simple", 768, 12, 12, 1, 192, True),
    ModelSpec("ViTPose++-B (coco)", 768, 12, 12, 6, 192, False),
]
QUICK_SPECS = [
    ModelSpec("tiny simple", 96, 2, 4, 1, 24, True),
    ModelSpec("tiny++ (coco)", 96, 2, 4, 6, 24, False),
]


@dataclass
class Settings:
    batches: tuple[int, ...]
    repeats: int  # timed repetitions per measurement (fewer if `budget_s` runs out)
    warmup: int
    budget_s: float  # time limit of one measurement's repetitions
    matmul_size: int
    backend_specs: tuple[str, ...]  # names of the specs whose optional back-ends are measured
    backend_batches: tuple[int, ...] = (1, 8)  # batch sizes of the back-end timings


FULL = Settings((1, 8), 7, 1, 40.0, 4096, ("ViT-B simple", "ViTPose++-B (coco)"))
QUICK = Settings((1, 2), 2, 1, 1.0, 1024, ("tiny simple",), (2,))


# --------------------------------------------------------------------------------------------- timing
def time_pair(fns: dict[str, Callable[[], Any]], settings: Settings, repeats: int | None = None) -> dict[str, list]:
    """Run every function `warmup` times, then `repeats` rounds of all of them back to back: seconds per call."""
    for _ in range(settings.warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    for r in range(repeats or settings.repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        if r >= 2 and time.perf_counter() - start > settings.budget_s:
            break
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def paired_ratio(slow: list[float], fast: list[float]) -> float:
    """Median over repetitions of slow / fast."""
    return median([a / b for a, b in zip(slow, fast, strict=True)])


# --------------------------------------------------------------------------------------------- machine
def machine_description() -> dict[str, str]:
    import cv2

    info = {
        "CPU": cpu_model(),
        "logical cores": str(os.cpu_count()),
        "torch threads": f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }
    info.update(module_versions(("transformers", "onnxruntime")))
    return info


def matmul_rate(size: int, settings: Settings) -> float:
    """float32 GFLOP/s of one large square torch.matmul (the machine's practical peak for this library)."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    times = time_pair({"mm": lambda: torch.matmul(a, b)}, settings, repeats=max(settings.repeats, 5))["mm"]
    return 2.0 * size**3 / min(times) / 1e9  # the best run: the rate the hardware can reach


def network_flops(config: Any) -> float:
    """Analytic FLOPs (2 x multiply-adds) of one crop through backbone + head, in the original formulation.

    Dense-equivalent for ViTPose++ (one expert per token). The simple head is counted as its 3 x 3 convolution on
    the upsampled map (what the model is on paper), although vitpose computes it in a cheaper, equivalent order.
    """
    bb = config.backbone_config
    c = bb.hidden_size
    rows, cols = bb.grid_size
    n = rows * cols
    hidden = int(c * bb.mlp_ratio)
    patch = n * c * bb.num_channels * bb.patch_size[0] * bb.patch_size[1]
    block = n * c * 3 * c + 2 * n * n * c + n * c * c + 2 * n * c * hidden
    k = config.num_labels
    if config.use_simple_decoder:
        head = (rows * config.scale_factor) * (cols * config.scale_factor) * k * c * 9
    else:
        head = n * c * 256 * 16 + (4 * n) * 256 * 256 * 16 + (16 * n) * 256 * k
    return 2.0 * (patch + bb.feature_layer * block + head)


def executed_flops(config: Any) -> float:
    """FLOPs vitpose actually runs for one crop: `network_flops` with the simple head in its rearranged order
    (C -> 9K channel mix at the low resolution, then upsampling and shifted sums of 9K maps, counted as free)."""
    flops = network_flops(config)
    if config.use_simple_decoder:
        bb = config.backbone_config
        rows, cols = bb.grid_size
        k, c, f = config.num_labels, bb.hidden_size, config.scale_factor
        flops += 2.0 * (rows * cols * 9 * k * c - (rows * f) * (cols * f) * k * c * 9)
    return flops


# --------------------------------------------------------------------------------------------- models and inputs
def build_pair(spec: ModelSpec, workdir: Path) -> tuple[Any, Any, Any]:
    """(transformers model, vitpose model, vitpose config) holding the same weights, both loaded from disk."""
    from transformers import VitPoseForPoseEstimation as HFModel
    from transformers.utils import logging as hf_logging

    from vitpose import VitPoseForPoseEstimation

    hf_logging.set_verbosity_error()
    path = spec.checkpoint
    if path is None:
        from transformers import VitPoseBackboneConfig, VitPoseConfig

        backbone = VitPoseBackboneConfig(
            hidden_size=spec.hidden_size,
            num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads,
            num_experts=spec.num_experts,
            part_features=spec.part_features,
            out_indices=[spec.num_layers],
        )
        config = VitPoseConfig(backbone_config=backbone, num_labels=17, use_simple_decoder=spec.simple)
        torch.manual_seed(0)
        with quiet():
            HFModel(config).save_pretrained(workdir)
        path = str(workdir)
    with quiet():
        hf = HFModel.from_pretrained(path).eval()  # transformers' defaults (sdpa attention)
        ours = VitPoseForPoseEstimation.from_pretrained(path)
    return hf, ours, ours.config


def load_image(path: Path) -> Any:
    from PIL import Image

    if path.is_file():
        return Image.open(path).convert("RGB")
    rng = np.random.default_rng(0)  # no shared data: a textured 640 x 480 stand-in
    return Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))


def person_boxes(image: Any, count: int) -> list[list[float]]:
    """`count` person-like COCO boxes spread over the image (some near its border, as detections are)."""
    width, height = image.size
    rng = np.random.default_rng(1)
    boxes = []
    for _ in range(count):
        w = float(rng.uniform(0.1, 0.35) * width)
        h = float(min(w * rng.uniform(1.5, 2.5), 0.9 * height))
        boxes.append([float(rng.uniform(-0.05, 0.95) * width - w / 2), float(rng.uniform(0, height - h)), w, h])
    return boxes


def synthetic_heatmaps(count: int, seed: int = 0) -> torch.Tensor:
    """UDP Gaussian heatmaps (count, 17, 64, 48) at random positions: what a trained network outputs."""
    from vitpose.ops.codec import UDPHeatmapCodec

    rng = np.random.default_rng(seed)
    keypoints = rng.uniform([10, 10], [182, 246], (count, 17, 2))
    heatmaps, _ = UDPHeatmapCodec().encode(keypoints, np.ones((count, 17)))
    return torch.from_numpy(heatmaps * rng.uniform(0.3, 1.0, (count, 17, 1, 1)).astype(np.float32))


class _Outputs:
    """The `.heatmaps` holder both post-processors read."""

    def __init__(self, heatmaps: torch.Tensor) -> None:
        self.heatmaps = heatmaps


# --------------------------------------------------------------------------------------------- the report
@dataclass
class Report:
    machine: dict[str, str] = field(default_factory=dict)
    sections: list[tuple[str, list[str], list[list[str]], str]] = field(default_factory=list)
    summary: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    why: dict[str, str] = field(default_factory=dict)  # target line -> what bounds it

    def table(self, title: str, header: list[str], rows: list[list[str]], note: str = "") -> None:
        self.sections.append((title, header, rows, note))

    def target(self, line: str, target: str, value: float | None, fmt: str, met: bool | None, why: str = "") -> None:
        shown = "n/a" if value is None else format(value, fmt)
        state = "n/a" if met is None else ("met" if met else "missed")
        self.summary.append([line, target, shown, state, why or self.why.get(line, "")])

    def markdown(self, command: str) -> str:
        out = ["# vitpose vs transformers: benchmark", "", f"Command: `{command}`", ""]
        out += ["| machine | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in self.machine.items()]
        out += ["", "## Targets", ""]
        out += _md_table(["line", "target", "measured", "", "note"], self.summary)
        for title, header, rows, note in self.sections:
            out += ["", f"## {title}", ""]
            if note:
                out += [note, ""]
            out += _md_table(header, rows)
        if self.notes:
            out += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}" if seconds >= 0.01 else f"{seconds * 1e3:.2f}"


def x(ratio: float) -> str:
    return f"{ratio:.2f}x"


# --------------------------------------------------------------------------------------------- measurements
def bench_preprocess(report: Report, image: Any, settings: Settings, hf_proc: Any, proc: Any) -> dict[int, float]:
    rows, ratios = [], {}
    for n in settings.batches:
        boxes = [person_boxes(image, n)]
        t = time_pair(
            {
                "hf": lambda b=boxes: hf_proc(image, boxes=b, return_tensors="pt"),
                "ours": lambda b=boxes: proc(image, boxes=b, return_tensors="pt"),
            },
            settings,
            repeats=settings.repeats * 3,
        )
        ratio = paired_ratio(t["hf"], t["ours"])
        ratios[n] = ratio
        th, to = median(t["hf"]), median(t["ours"])
        # The floor: the bare cv2.warpAffine of these boxes (what the original does per box), nothing else.
        floor = _warp_floor(image, boxes[0], settings)
        report.why[f"pre-processing, {n} boxes"] = (
            f"the bare cv2.warpAffine crops alone take {ms(floor)} ms here: at most {th / floor:.0f}x on one thread"
        )
        rows.append([str(n), ms(th), ms(to), f"{n / th:.0f}", f"{n / to:.0f}", x(ratio), ms(floor)])
    report.table(
        "Pre-processing (one PIL image, N boxes -> pixel_values)",
        ["boxes", "transformers ms", "vitpose ms", "transformers crops/s", "vitpose crops/s", "ratio",
         "bare cv2 warps ms"],
        rows,
        f"transformers: `{type(hf_proc).__name__}` (per box and channel `scipy.ndimage.affine_transform`); vitpose: "
        "the PIL image's own pixel buffer read in place (Arrow export, no copy), one `cv2.warpAffine` per box into a "
        "reused buffer, normalised straight into the output tensor; boxes split over two threads from 2 boxes on. "
        "'bare cv2 warps': the same warps alone, one thread, from a ready uint8 array (no conversion, no "
        "normalisation).",
    )  # fmt: skip
    return ratios


def _warp_floor(image: Any, boxes: list, settings: Settings) -> float:
    """Median seconds of the bare `cv2.warpAffine` crops of `boxes` (one thread, a ready uint8 RGB array)."""
    from vitpose.ops.geometry import box_to_center_scale, crop_boxes

    rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    centers, scales = box_to_center_scale(np.asarray(boxes))
    out = np.empty((len(boxes), 256, 192, 3), np.uint8)
    return median(time_pair({"warp": lambda: crop_boxes(rgb, centers, scales, out=out)}, settings, 30)["warp"])


def bench_decode(report: Report, image: Any, settings: Settings, hf_proc: Any, proc: Any) -> dict[int, float]:
    rows, ratios = [], {}
    for n in settings.batches:
        boxes = [person_boxes(image, n)]
        outputs = _Outputs(synthetic_heatmaps(n))
        t = time_pair(
            {
                "hf": lambda b=boxes, o=outputs: hf_proc.post_process_pose_estimation(o, boxes=b),
                "ours": lambda b=boxes, o=outputs: proc.post_process_pose_estimation(o, boxes=b),
            },
            settings,
            repeats=settings.repeats * 3,
        )
        ratio = paired_ratio(t["hf"], t["ours"])
        ratios[n] = ratio
        rows.append([str(n), ms(median(t["hf"])), ms(median(t["ours"])), x(ratio)])
    report.table(
        "Decoding (heatmaps (N, 17, 64, 48) -> keypoints in the image, `post_process_pose_estimation`)",
        ["boxes", "transformers ms", "vitpose ms", "ratio"],
        rows,
        "Both: argmax + DARK-UDP + back-transform. transformers blurs every whole heatmap with scipy; vitpose blurs "
        "only the 13 x 13 patch each refinement reads, all keypoints of all boxes in one OpenCV call.",
    )
    return ratios


@dataclass
class ModelResult:
    network: dict[int, float] = field(default_factory=dict)  # batch -> ratio
    efficiency: dict[int, float] = field(default_factory=dict)  # batch -> vitpose efficiency
    stage: dict[int, float] = field(default_factory=dict)  # boxes -> ratio
    ours_network_s: dict[int, float] = field(default_factory=dict)
    gemm_efficiency: dict[int, float] = field(default_factory=dict)  # batch -> the block's GEMMs alone, vs the rate
    stage_ceiling: dict[int, float] = field(default_factory=dict)  # boxes -> transformers / vitpose at peak rate


def bench_model(
    spec: ModelSpec,
    hf: Any,
    ours: Any,
    image: Any,
    settings: Settings,
    hf_proc: Any,
    proc: Any,
    net_rows: list[list[str]],
    stage_rows: list[list[str]],
) -> ModelResult:
    """Network (batch 1 and 8) and whole stage (1 and 8 boxes) against transformers."""
    result = ModelResult()
    moe = ours.is_moe
    flops = network_flops(ours.config)
    mm_size = settings.matmul_size // 2
    mm_a, mm_b = torch.randn(mm_size, mm_size), torch.randn(mm_size, mm_size)
    from vitpose.parallel import cpu_streams

    bb = ours.config.backbone_config
    tokens = bb.grid_size[0] * bb.grid_size[1]
    c, hidden = bb.hidden_size, int(bb.hidden_size * bb.mlp_ratio)
    block_weights = [torch.randn(o, i) for o, i in ((3 * c, c), (c, c), (hidden, c), (c, hidden))]
    for b in settings.batches:
        pixel_values = torch.randn(b, 3, *bb.image_size)
        index = torch.zeros(b, dtype=torch.long) if moe else None
        block_inputs = [torch.randn(b * tokens, w.shape[1]) for w in block_weights]
        with torch.inference_mode():
            fns = {
                "mm": lambda: torch.matmul(mm_a, mm_b),
                # The matrix multiplies of one block at this batch, alone: how fast these shapes can go here.
                "gemm": lambda xs=block_inputs: [F.linear(v, w) for v, w in zip(xs, block_weights, strict=True)],
                "hf": lambda p=pixel_values, i=index: hf(pixel_values=p, dataset_index=i),
                "ours": lambda p=pixel_values, i=index: ours(p, dataset_index=i),
            }
            streamed = cpu_streams(b, torch.device("cpu"), ours.cpu_streams) > 1
            if streamed:
                fns["ours, one stream"] = lambda p=pixel_values, i=index: _one_stream(ours, p, i)
            t = time_pair(fns, settings)
        th, to = median(t["hf"]), median(t["ours"])
        # Efficiency against the matmul rate measured in the same repetition (the load of a shared machine drifts).
        mm_flops = 2.0 * mm_size**3
        eff_o = median([flops * b / to_ / (mm_flops / tm) for to_, tm in zip(t["ours"], t["mm"], strict=True)])
        eff_h = median([flops * b / th_ / (mm_flops / tm) for th_, tm in zip(t["hf"], t["mm"], strict=True)])
        gemm_flops = 2.0 * b * tokens * sum(w.numel() for w in block_weights)
        result.gemm_efficiency[b] = median(
            [gemm_flops / tg / (mm_flops / tm) for tg, tm in zip(t["gemm"], t["mm"], strict=True)]
        )
        result.network[b] = paired_ratio(t["hf"], t["ours"])
        result.efficiency[b] = eff_o
        result.ours_network_s[b] = to
        one_stream = ms(median(t["ours, one stream"])) if streamed else "(same)"
        net_rows.append(
            [
                spec.name,
                str(b),
                ms(th),
                ms(to),
                one_stream,
                x(result.network[b]),
                f"{flops * b / to / 1e9:.0f}",
                f"{eff_h:.0%}",
                f"{eff_o:.0%}",
                f"{result.gemm_efficiency[b]:.0%}",
            ]
        )

    for n in settings.batches:
        boxes = [person_boxes(image, n)]
        hf_stage = lambda b=boxes: _hf_stage(hf, hf_proc, image, b, moe)  # noqa: E731
        our_stage = lambda b=boxes: _our_stage(ours, proc, image, b, moe)  # noqa: E731
        with torch.inference_mode():
            t = time_pair({"mm": lambda: torch.matmul(mm_a, mm_b), "hf": hf_stage, "ours": our_stage}, settings)
        result.stage[n] = paired_ratio(t["hf"], t["ours"])
        # The most any fp32 implementation could gain here: transformers' time over vitpose's own FLOPs run at the
        # matrix-multiply rate of the same repetition (pre-processing and decoding counted as free).
        mine = executed_flops(ours.config) * n
        result.stage_ceiling[n] = median(
            [th / (mine / (mm_flops / tm)) for th, tm in zip(t["hf"], t["mm"], strict=True)]
        )
        stage_rows.append(
            [
                spec.name,
                str(n),
                ms(median(t["hf"])),
                ms(median(t["ours"])),
                x(result.stage[n]),
                x(result.stage_ceiling[n]),
            ]
        )
    return result


def _one_stream(model: Any, pixel_values: torch.Tensor, index: torch.Tensor | None) -> Any:
    """The network as one stream of all-thread operations (`cpu_streams = 1`), for comparison."""
    before, model.cpu_streams = model.cpu_streams, 1
    try:
        return model(pixel_values, dataset_index=index)
    finally:
        model.cpu_streams = before


def bench_backends(
    spec: ModelSpec,
    ours: Any,
    hf: Any,
    image: Any,
    settings: Settings,
    proc: Any,
    hf_proc: Any,
    workdir: Path,
    rows: list[list[str]],
    stage_rows: list[list[str]],
) -> tuple[dict[str, dict[int, float]], dict[str, float], dict[str, dict[int, float]]]:
    """ONNX Runtime float32 / int8 and PyTorch int8 against vitpose float32: speed and output change; and the whole
    stage (largest box count) with each back-end against transformers. Returns per back-end {batch: speed-up over
    vitpose fp32}, {back-end: whole-stage ratio to transformers}, and per fp32 back-end {batch: efficiency}."""
    from vitpose.inference.backends import quantize_int8

    candidates: dict[str, Callable[[], Any]] = {"PyTorch int8 (dynamic, Linear)": lambda: quantize_int8(ours)}
    try:
        import onnxruntime  # noqa: F401

        from vitpose.export import export_onnx
        from vitpose.inference.backends.onnx import OnnxPoseModel, quantize_onnx_int8

        def onnx_fp32() -> Any:
            with quiet():
                export_onnx(ours, workdir / "model.onnx", dataset=0, check=False)
            return OnnxPoseModel(workdir / "model.onnx")

        def onnx_int8() -> Any:
            if not (workdir / "model.onnx").exists():
                onnx_fp32()
            with quiet():
                return OnnxPoseModel(quantize_onnx_int8(workdir / "model.onnx"))

        candidates = {"ONNX Runtime fp32": onnx_fp32, "ONNX Runtime int8": onnx_int8, **candidates}
    except ImportError:
        rows.append(
            [spec.name, "ONNX Runtime", "-", "not installed (pip install onnx onnxruntime)", "", "", "", "", ""]
        )

    moe = ours.is_moe
    index = 0 if moe else None
    boxes = [person_boxes(image, max(settings.batches))]
    inputs = proc(image, boxes=boxes, return_tensors="pt")
    with torch.inference_mode():
        reference = ours(**inputs, dataset_index=index).heatmaps
    ref_kpts = _keypoints(proc, reference, boxes)
    speedups: dict[str, dict[int, float]] = {}
    stage_ratios: dict[str, float] = {}
    efficiency: dict[str, dict[int, float]] = {}  # fp32 back-ends: batch -> share of the matmul rate
    flops = network_flops(ours.config)
    mm_size = settings.matmul_size // 2
    mm_a, mm_b = torch.randn(mm_size, mm_size), torch.randn(mm_size, mm_size)
    mm_flops = 2.0 * mm_size**3
    for name, make in candidates.items():
        model = make()
        with torch.inference_mode():
            heat = model(**inputs, dataset_index=index).heatmaps
        diff = float((heat - reference).abs().max())
        rel = diff / float(reference.abs().max())
        px = np.linalg.norm(_keypoints(proc, heat, boxes) - ref_kpts, axis=-1)
        speedups[name] = {}
        for b in settings.backend_batches:
            pixel_values = torch.randn(b, 3, *ours.config.backbone_config.image_size)
            with torch.inference_mode():
                t = time_pair(
                    {
                        "mm": lambda: torch.matmul(mm_a, mm_b),
                        "fp32": lambda p=pixel_values: ours(p, dataset_index=index),
                        "backend": lambda p=pixel_values, m=model: m(p, dataset_index=index),
                    },
                    settings,
                )
            speedups[name][b] = paired_ratio(t["fp32"], t["backend"])
            shown_eff = "-"
            if "fp32" in name:  # an int8 back-end does other arithmetic: a share of the fp32 rate means nothing
                eff = median([flops * b / tb / (mm_flops / tm) for tb, tm in zip(t["backend"], t["mm"], strict=True)])
                efficiency.setdefault(name, {})[b] = eff
                shown_eff = f"{eff:.0%}"
            rows.append(
                [
                    spec.name,
                    name,
                    str(b),
                    ms(median(t["fp32"])),
                    ms(median(t["backend"])),
                    x(speedups[name][b]),
                    shown_eff,
                    f"{diff:.2e} ({rel:.1%})",
                    f"{np.median(px):.2f} / {(px > 1).mean():.0%}",
                ]
            )
        t = time_pair(
            {
                "hf": lambda: _hf_stage(hf, hf_proc, image, boxes, moe),
                "backend": lambda m=model: _our_stage(m, proc, image, boxes, moe),
            },
            settings,
        )
        stage_ratios[name] = paired_ratio(t["hf"], t["backend"])
        stage_rows.append(
            [f"{spec.name}, {name}", str(len(boxes[0])), ms(median(t["hf"])), ms(median(t["backend"])),
             x(stage_ratios[name]), "-"]
        )  # fmt: skip
        del model
        gc.collect()
    return speedups, stage_ratios, efficiency


def _hf_stage(hf: Any, hf_proc: Any, image: Any, boxes: list, moe: bool) -> Any:
    """The transformers ViTPose documentation's code with transformers: processor, model, post-processing."""
    inputs = hf_proc(image, boxes=boxes, return_tensors="pt")
    extra = {"dataset_index": torch.zeros(len(boxes[0]), dtype=torch.long)} if moe else {}
    with torch.inference_mode():
        outputs = hf(**inputs, **extra)
    return hf_proc.post_process_pose_estimation(outputs, boxes=boxes)


def _our_stage(model: Any, proc: Any, image: Any, boxes: list, moe: bool) -> Any:
    """The same code with vitpose (the imports changed), any back-end as the model."""
    inputs = proc(image, boxes=boxes, return_tensors="pt")
    with torch.inference_mode():
        outputs = model(**inputs, dataset_index=0 if moe else None)
    return proc.post_process_pose_estimation(outputs, boxes=boxes)


def _keypoints(proc: Any, heatmaps: torch.Tensor, boxes: list) -> np.ndarray:
    results = proc.post_process_pose_estimation(heatmaps, boxes=boxes)
    return np.stack([person["keypoints"].numpy() for person in results[0]])


# --------------------------------------------------------------------------------------------- memory
_MEMORY_PROBE = r"""
import json, resource, sys, warnings
warnings.simplefilter("ignore")

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0

def rss():
    return status("VmRSS")

def peak_rss():
    # VmHWM: the high-water mark of this process's own memory. ru_maxrss would also carry the RSS of the parent
    # at fork time across exec (Linux keeps it per process, not per address space), so a benchmark process holding
    # gigabytes of models would set a floor under the child's figure.
    hwm = status("VmHWM")
    return hwm if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

import torch
if sys.argv[2] == "vitpose":
    from vitpose import VitPoseForPoseEstimation as Model
else:
    from transformers import VitPoseForPoseEstimation as Model
    from transformers.utils import logging
    logging.set_verbosity_error()
before = rss()
model = Model.from_pretrained(sys.argv[1])
peak_load = peak_rss()
weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
for t in model.state_dict().values():   # touch every weight: memory-mapped pages become resident
    t.float().sum() if t.numel() < 2**20 else t.sum()
peak = peak_rss()
print(json.dumps({"before": before, "peak_load": peak_load, "peak": peak, "weights": weights}))
"""


def write_vith_checkpoint(directory: Path) -> int:
    """A ViT-H-sized (classic decoder) random checkpoint in the hub format; returns its parameter count."""
    from safetensors.torch import save_file

    from vitpose.checkpoints import native_to_hf
    from vitpose.config import VitPoseConfig
    from vitpose.models.pose import VitPoseForPoseEstimation

    config = VitPoseConfig.from_preset("huge", use_simple_decoder=False)
    with torch.device("meta"):
        skeleton = VitPoseForPoseEstimation(config)
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, meta in native_to_hf(skeleton.state_dict()).items():
        tensor = torch.empty(meta.shape, dtype=meta.dtype)
        if key.endswith("running_var"):
            tensor.fill_(1.0)
        elif tensor.is_floating_point():
            tensor.normal_(0, 0.02, generator=generator)
        else:
            tensor.zero_()
        state[key] = tensor
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(directory)
    return sum(t.numel() for t in state.values())


def bench_memory(report: Report, workdir: Path) -> float | None:
    directory = workdir / "vit-h"
    params = write_vith_checkpoint(directory)
    gc.collect()
    rows, ratio = [], None
    for library in ("vitpose", "transformers"):
        proc = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, str(directory), library], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            rows.append([library, "failed: " + (proc.stderr.strip().splitlines() or ["?"])[-1], "", "", "", ""])
            continue
        m = json.loads(proc.stdout.strip().splitlines()[-1])
        load = (m["peak_load"] - m["before"]) / m["weights"]
        steady = (m["peak"] - m["before"]) / m["weights"]
        if library == "vitpose":
            ratio = max(load, steady)
        rows.append(
            [
                library,
                f"{m['weights'] / 1e9:.2f}",
                f"{(m['peak_load'] - m['before']) / 1e9:.2f}",
                x(load),
                f"{(m['peak'] - m['before']) / 1e9:.2f}",
                x(steady),
            ]
        )
    report.table(
        f"Memory: loading a ViT-H-sized checkpoint ({params / 1e6:.0f}M parameters, safetensors, fp32)",
        ["library", "weights GB", "peak during from_pretrained GB", "/ weights", "peak after touching every weight GB",
         "/ weights"],
        rows,
        "Peak resident memory of a fresh process (`VmHWM`) above its resident size before the call. Weights are "
        "memory-mapped, so they become resident as they are first read; the second figure reads every weight once "
        "(what the first inference does), which is the figure that counts.",
    )  # fmt: skip
    return ratio


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, few repeats (keeps the script working)")
    parser.add_argument("--out", help="Markdown file to write (default benchmarks/RESULTS.md; --quick: a temp file)")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE), help="image to crop (default: a shared COCO image)")
    parser.add_argument("--checkpoint", help="benchmark this hub-format checkpoint (directory or hub id) instead")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, help="timed repetitions per measurement")
    parser.add_argument("--no-backends", action="store_true", help="skip the optional back-ends")
    parser.add_argument("--no-memory", action="store_true", help="skip the ViT-H loading memory measurement")
    parser.add_argument("--memory", action="store_true", help="measure memory even with --quick")
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.quick:
        # --quick only checks that everything runs: one thread avoids OpenMP barrier stalls on a busy shared machine
        # (tiny models then take milliseconds instead of hundreds of them).
        torch.set_num_threads(1)
    settings = QUICK if args.quick else FULL
    if args.repeats:
        settings = Settings(**{**settings.__dict__, "repeats": args.repeats})
    specs = QUICK_SPECS if args.quick else FULL_SPECS
    if args.checkpoint:
        specs = [ModelSpec(f"checkpoint {args.checkpoint}", checkpoint=args.checkpoint)]
        settings = Settings(**{**settings.__dict__, "backend_specs": (specs[0].name,)})

    with quiet():  # transformers says which processor back-end it falls back to; the report names it
        from transformers import VitPoseImageProcessor as HFProcessor

    from vitpose import VitPoseImageProcessor

    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = Report()
    report.machine = machine_description()
    load_start = load_average()
    started = time.perf_counter()
    rate = matmul_rate(settings.matmul_size, settings)
    report.machine["fp32 matmul rate"] = f"{rate:.0f} GFLOP/s (best of {settings.matmul_size}^3 torch.matmul)"
    print(f"matmul: {rate:.0f} GFLOP/s", flush=True)

    image = load_image(Path(args.image))
    with quiet():
        hf_proc = HFProcessor()
    proc = VitPoseImageProcessor()
    pre = bench_preprocess(report, image, settings, hf_proc, proc)
    print("pre-processing:", {k: round(v, 1) for k, v in pre.items()}, flush=True)
    dec = bench_decode(report, image, settings, hf_proc, proc)
    print("decoding:", {k: round(v, 1) for k, v in dec.items()}, flush=True)

    net_rows: list[list[str]] = []
    stage_rows: list[list[str]] = []
    backend_rows: list[list[str]] = []
    results: dict[str, ModelResult] = {}
    backend_speedups: dict[str, dict[str, dict[int, float]]] = {}
    backend_stages: dict[str, dict[str, float]] = {}
    backend_eff: dict[str, dict[str, dict[int, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="vitpose_bench_") as tmp:
        for i, spec in enumerate(specs):
            workdir = Path(tmp, f"model{i}")
            workdir.mkdir()
            hf, ours, _ = build_pair(spec, workdir)
            results[spec.name] = bench_model(spec, hf, ours, image, settings, hf_proc, proc, net_rows, stage_rows)
            print(spec.name, results[spec.name], flush=True)
            if not args.no_backends and spec.name in settings.backend_specs:
                backend_speedups[spec.name], backend_stages[spec.name], backend_eff[spec.name] = bench_backends(
                    spec, ours, hf, image, settings, proc, hf_proc, workdir, backend_rows, stage_rows
                )
                print(spec.name, "back-ends:", backend_speedups[spec.name], backend_stages[spec.name], flush=True)
            del hf, ours
            gc.collect()
        memory = None
        if (not args.quick or args.memory) and not args.no_memory:
            memory = bench_memory(report, Path(tmp))
            print("memory:", memory, flush=True)

    report.table(
        "Network (pixel_values -> heatmaps, inference mode)",
        ["model", "batch", "transformers ms", "vitpose ms", "vitpose one stream ms", "ratio", "vitpose GFLOP/s",
         "efficiency transformers", "efficiency vitpose", "block GEMMs alone"],
        net_rows,
        "Efficiency = analytic FLOPs of the model (original formulation, dense-equivalent for ViTPose++) / time / the "
        f"fp32 rate of a {settings.matmul_size // 2}^3 torch.matmul timed in the same repetition (median over "
        "repetitions). ViTPose++: dataset_index 0 for every crop. 'vitpose ms' is the default forward (CPU "
        "inference of 2 or more crops per thread runs as side-by-side streams, `vitpose.parallel`); 'one stream' is "
        "the same model with `cpu_streams = 1`. 'block GEMMs alone': the four matrix multiplies of one transformer "
        "block at this batch (qkv, proj, fc1, fc2; 96% of the FLOPs), timed on their own with all threads, as a "
        "fraction of the same rate: the efficiency these shapes allow on this machine.",
    )  # fmt: skip
    report.table(
        "Whole pose stage given boxes (one image: pre-processing + network + decoding, fp32)",
        ["model", "boxes", "transformers ms", "vitpose ms", "ratio", "ceiling"],
        stage_rows,
        "Both sides run the transformers ViTPose documentation's code: `processor(image, boxes=...)`, "
        "`model(**inputs)` (ViTPose++: dataset_index 0), `processor.post_process_pose_estimation(outputs, boxes=...)`. "
        "Ceiling: transformers' time over the time "
        "vitpose's own FLOPs would take at the fp32 matrix-multiply rate timed in the same repetition, with free "
        "pre-processing and decoding (median over repetitions): what an fp32 implementation of the same arithmetic "
        "running at that rate would reach.",
    )
    if backend_rows:
        report.table(
            "Optional CPU back-ends (vs vitpose fp32 in the same run)",
            ["model", "back-end", "batch", "vitpose fp32 ms", "back-end ms", "speed-up", "back-end efficiency",
             "max abs heatmap diff", "keypoint shift px (median / share > 1 px)"],
            backend_rows,
            "Output change measured on the crops of the benchmark image against vitpose fp32; the heatmap difference "
            "is also given relative to the largest heatmap value. With random weights the heatmaps have no clear "
            "peak and a small change can move a keypoint's argmax far away, so the keypoint shift is pessimistic "
            "(run with --checkpoint for real weights). Back-end efficiency (fp32 back-ends): as in the network table, "
            "against the matmul timed in the same repetition.",
        )  # fmt: skip

    _targets(report, settings, specs, pre, dec, results, backend_speedups, backend_stages, backend_eff, memory)
    report.machine["load average (start -> end)"] = f"{load_start} -> {load_average()}"
    report.machine["run time"] = f"{time.perf_counter() - started:.0f} s"
    text = report.markdown(command.strip())
    out = args.out or (str(Path(tempfile.gettempdir(), "vitpose_bench_quick.md")) if args.quick else None)
    out = out or str(ROOT / "benchmarks" / "RESULTS.md")
    Path(out).write_text(text)
    print(text)
    print(f"written to {out}")
    return 0


def _targets(
    report: Report,
    settings: Settings,
    specs: list[ModelSpec],
    pre: dict[int, float],
    dec: dict[int, float],
    results: dict[str, ModelResult],
    backends: dict[str, dict[str, dict[int, float]]],
    backend_stages: dict[str, dict[str, float]],
    backend_eff: dict[str, dict[str, dict[int, float]]],
    memory: float | None,
) -> None:
    big = max(settings.batches)
    for n, ratio in pre.items():
        report.target(f"pre-processing, {n} boxes", f">= {TARGETS['preprocess']:.0f}x", ratio, ".1f", ratio >= 20)
    for n, ratio in dec.items():
        report.target(f"decoding, {n} boxes", f">= {TARGETS['decode']:.0f}x", ratio, ".1f", ratio >= 5)
    for spec in specs:
        res = results[spec.name]
        ratio = res.stage[big]
        report.target(f"whole stage, {spec.name}, {big} boxes", ">= 1.3x", ratio, ".2f", ratio >= TARGETS["stage"],
                      f"ceiling {res.stage_ceiling[big]:.2f}x (transformers' time / vitpose's FLOPs at the "
                      "matmul rate)")  # fmt: skip
        for backend, stage in backend_stages.get(spec.name, {}).items():
            report.target(f"whole stage, {spec.name} on {backend}, {big} boxes", ">= 1.3x (fp32 only)", stage,
                          ".2f", stage >= TARGETS["stage"] if "fp32" in backend else None)  # fmt: skip
    for spec in specs:
        for b, eff in results[spec.name].efficiency.items():
            gemm = results[spec.name].gemm_efficiency[b]
            report.target(f"network efficiency, {spec.name}, batch {b}", ">= 80%", eff, ".0%", eff >= 0.8,
                          f"the block's GEMMs alone reach {gemm:.0%} at this batch")  # fmt: skip
        for backend, by_batch in backend_eff.get(spec.name, {}).items():
            for b, eff in by_batch.items():
                report.target(f"network efficiency, {spec.name} on {backend}, batch {b}", ">= 80%", eff, ".0%",
                              eff >= 0.8, "optional back-end")  # fmt: skip
    for name, per_backend in backends.items():
        for backend, by_batch in per_backend.items():
            speed = by_batch[max(by_batch)]
            report.target(f"back-end {backend}, {name}, batch {big}", ">= 1.4x", speed, ".2f", speed >= 1.4)
    report.target("ViT-H load peak / weights", "<= 1.3x", memory, ".2f", None if memory is None else memory <= 1.3)


if __name__ == "__main__":
    sys.exit(main())
