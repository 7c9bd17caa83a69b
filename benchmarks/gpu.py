#!/usr/bin/env python
"""vitpose on one GPU, in one markdown table: crops, reduced precision, network speed (eager and torch.compile),
transformers' ViTPose side by side, the whole pose stage, `vitpose predict` over a folder, and peak GPU memory.

    python benchmarks/gpu.py --out benchmarks/GPU_RESULTS.md   # a CUDA machine: under 4 minutes (--budget, 205 s)
    python benchmarks/gpu.py --quick                            # the CPU, tiny models, 8 images: keeps it working

Nothing is downloaded: every model is random-init from a config (speed does not depend on the weights), as in
benchmarks/run.py; `--checkpoint DIR` uses real hub-format ViT-B weights for the rows that compare outputs. Images:
the shared COCO images (../shared/data/coco/*.jpg, boxes from test_coco.json), a synthetic one where they are
missing. The table goes to stdout (and --out FILE), progress to stderr. A time budget is enforced (--budget,
counted from the start, after importing torch): a line that no longer fits says "skipped: time budget"; a line
that fails says "failed: ..." and the others go on.

Rows (the # column):
  1. Crops made on the device (`crop_regions(..., device=...)`: `grid_sample`, `crop_boxes_torch`) against the CPU's
     cv2 crops of the same images and boxes: max and mean |difference| of the de-normalised pixels, in grey levels
     (0-255).
  2. fp16 and bf16 against fp32, ViT-B on the real crops: the heatmap drift (max |difference| / fp32's max heatmap
     value) and the keypoint drift (max and mean distance in image pixels, decoded by
     `post_process_pose_estimation`). With random weights the heatmaps have no clear peak: the keypoint drift is
     pessimistic (use --checkpoint for real weights).
  3. Network crops/s: the forward on ready `pixel_values` (inference mode, warm-up first, synchronised, median of
     repeats) of ViT-S/B/L/H (simple decoder, 256x192) at batch 1, 8, 64 in fp32 (TF32 off, torch's default),
     fp16 and bf16; then `torch.compile` (mode="default" and "reduce-overhead", which uses CUDA graphs) of ViT-B
     fp16 at batch 1 and 64 against eager in the same process, with the compile time (a subprocess, killed at
     the budget). The target line: ViT-B batch 64 fp16 >= 2,000 crops/s (the paper: about 900 on an A100).
  4. transformers' VitPoseForPoseEstimation against vitpose on the same GPU, the same config and weights (one
     saved checkpoint, loaded by both): crops/s of each and transformers' time / vitpose's (> 1: vitpose faster).
  5. The whole pose stage, images + boxes -> keypoints: `PoseEstimator.predict(images, boxes=...)` against
     transformers' processor + model + `post_process_pose_estimation` on the same images and boxes (all images in
     one call), images/s.
  6. `vitpose predict FOLDER --boxes --annotations --device cuda --dtype float16` (in-process, `vitpose.cli.main`;
     without --dtype where the command does not take it yet, said in the row) over 200 copies of the COCO images,
     against the transformers ViTPose documentation's loop (its processor, model and post-processing per image,
     drawn with the documentation's OpenCV functions and written with cv2.imwrite) on the same images and boxes;
     model loading included on both sides. Target: >= 10x.
  7. Peak GPU memory (`torch.cuda.max_memory_allocated`): per line in its column, as the peak and (+) what the line
     added over what was allocated before it; and whole jobs.

--quick runs the same code paths on the CPU (tiny models: hidden 96, 2 layers; batch 1 and 8; fp32 and bf16;
8 images; torch.compile with backend="eager"), in well under a minute; tests/test_gpu_script.py runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gc
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/run.py and machine.py
from machine import cpu_model, load_average, module_versions, quiet
from run import (
    FULL_SPECS,
    QUICK_SPECS,
    ROOT,
    ModelSpec,
    Settings,
    _md_table,
    _Outputs,
    build_pair,
    load_image,
    median,
    ms,
    paired_ratio,
    person_boxes,
    time_pair,
)

from vitpose.device import DTYPE_ALIASES, resolve_dtype

STARTED = time.monotonic()  # the budget counts from here (after importing torch; transformers comes later)
COCO_DIR = ROOT.parent / "shared" / "data" / "coco"
DOC_EXAMPLE = ROOT / "examples" / "transformers_doc_example.py"
TARGET_CROPS_S = 2000.0  # ViT-B, batch 64, fp16
TARGET_PREDICT = 10.0  # vitpose predict / the documentation's loop
MAX_COMPILE_S = 150.0  # the compile subprocess gets at most this (the rest of the budget if less)


# --------------------------------------------------------------------------------------------- settings
@dataclass
class Mode:
    """What one run measures: the full GPU run or --quick."""

    pair: str  # the name of the benchmarks/run.py ModelSpec used for rows 2, 4, 5, 6 and ViT-B of row 3
    networks: list[tuple[str, str | None, dict[str, Any]]]  # row 3: (name, preset or None for the pair, overrides)
    batches: tuple[int, ...]
    dtypes: tuple[str, ...]
    hf_batches: tuple[int, ...]
    stage_dtypes: tuple[str, ...]
    stage_images: int
    folder_images: int
    compile_jobs: tuple[tuple[str, int], ...]  # (mode, batch), in the order they are run
    compile_dtype: str
    compile_backend: str
    predict_dtype: str
    budget_s: float
    repeats: int  # timed repetitions of a network line (fewer where `line_s` runs out, at least 3)
    warmup: int
    line_s: float
    device: str


FULL = Mode(
    pair="ViT-B simple",
    networks=[("ViT-B", None, {}), ("ViT-S", "small", {}), ("ViT-L", "large", {}), ("ViT-H", "huge", {})],
    batches=(1, 8, 64),
    dtypes=("fp32", "fp16", "bf16"),
    hf_batches=(1, 64),
    stage_dtypes=("fp32", "fp16"),
    stage_images=16,
    folder_images=200,
    compile_jobs=(("default", 64), ("reduce-overhead", 1), ("reduce-overhead", 64), ("default", 1)),
    compile_dtype="fp16",
    compile_backend="inductor",
    predict_dtype="fp16",
    budget_s=205.0,
    repeats=20,
    warmup=2,
    line_s=1.0,
    device="cuda",
)
QUICK = Mode(
    pair="tiny simple",
    networks=[("tiny", None, {})],  # (build_network, for the presets, runs in the compile subprocess)
    batches=(1, 8),
    dtypes=("fp32", "bf16"),
    hf_batches=(1,),
    stage_dtypes=("fp32",),
    stage_images=4,
    folder_images=8,
    compile_jobs=(("default", 1), ("default", 8)),
    compile_dtype="fp32",
    compile_backend="eager",  # dynamo only: inductor's C++ build would take minutes on a small CPU
    predict_dtype="bf16",
    budget_s=100.0,
    repeats=2,
    warmup=1,
    line_s=0.3,
    device="cpu",
)


def timing(repeats: int, warmup: int, budget_s: float) -> Settings:
    """benchmarks/run.py's timing settings (`time_pair`) of one line."""
    return Settings(batches=(), repeats=repeats, warmup=warmup, budget_s=budget_s, matmul_size=0, backend_specs=())


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.2f} GiB" if num_bytes >= 2**28 else f"{num_bytes / 2**20:.0f} MiB"


def one_line(err: BaseException, limit: int = 220) -> str:
    text = " ".join(str(err).split()) or repr(err)
    text = f"{type(err).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------- device helpers
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synced(fn: Callable[[], Any], device: torch.device) -> Callable[[], None]:
    """`fn` followed by a device synchronisation, so that a timed call includes the device's work."""

    def call() -> None:
        fn()
        synchronize(device)

    return call


class GpuMemory:
    """Peak allocated GPU memory per line (`reset` before it, `text` after), and the highest peak of the run."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.on = device.type == "cuda"
        self.highest = 0
        self.last = 0  # the peak of the last line

    def reset(self) -> int:
        """Start a line: its peak counts from here. Returns what is allocated now."""
        if not self.on:
            return 0
        synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return torch.cuda.memory_allocated(self.device)

    def text(self, resident: int) -> str:
        if not self.on:
            return "n/a (CPU)"
        synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device)
        self.highest, self.last = max(self.highest, peak), peak
        return self.describe(peak, resident)

    @staticmethod
    def describe(peak: int, resident: int) -> str:
        return f"{gib(peak)} (+{gib(max(peak - resident, 0))})"


# --------------------------------------------------------------------------------------------- the table
@dataclass
class Table:
    rows: list[tuple[int, int, list[str]]] = field(default_factory=list)

    def add(self, section: int, measurement: str, result: str, memory: str = "", note: str = "") -> None:
        cells = [str(section), measurement, result, memory or "-", note]
        self.rows.append((section, len(self.rows), [c.replace("|", "\\|").replace("\n", " ") for c in cells]))

    def markdown(self) -> list[str]:
        ordered = [cells for _, _, cells in sorted(self.rows, key=lambda r: (r[0], r[1]))]
        return _md_table(["#", "measurement", "result", "peak GPU memory (+ over resident)", "note"], ordered)


class Budget:
    """The run's time limit, counted from the script's start."""

    def __init__(self, seconds: float) -> None:
        self.deadline = STARTED + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass
class Context:
    mode: Mode
    device: torch.device
    table: Table
    budget: Budget
    memory: GpuMemory
    tmp: Path
    samples: list[Sample] = field(default_factory=list)

    def attempt(self, section: int, measurement: str, fn: Callable[[], Any], need_s: float = 2.0) -> Any:
        """Run one measurement (which adds its rows): "skipped: time budget" when fewer than `need_s` seconds are
        left, "failed: ..." (one row, the traceback on stderr) when it raises."""
        if self.budget.left() < need_s:
            self.table.add(section, measurement, "skipped: time budget")
            say(f"skipped (time budget): {measurement}")
            return None
        say(measurement)
        try:
            return fn()
        except Exception as err:  # one line of the table, whatever went wrong; the run goes on
            traceback.print_exc(file=sys.stderr)
            self.table.add(section, measurement, f"failed: {one_line(err)}")
            return None
        finally:
            gc.collect()
            if self.device.type == "cuda":
                with contextlib.suppress(Exception):
                    torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------- inputs
@dataclass
class Sample:
    path: Path
    image: Any  # PIL RGB
    boxes: np.ndarray  # (n, 4) COCO x, y, w, h


def load_samples(tmp: Path) -> tuple[list[Sample], str]:
    """The shared COCO images with their ground-truth person boxes; one synthetic image where they are missing."""
    from PIL import Image

    annotations = COCO_DIR / "test_coco.json"
    samples = []
    if annotations.is_file():
        data = json.loads(annotations.read_text())
        for image in data["images"]:
            boxes = [a["bbox"] for a in data["annotations"] if a["image_id"] == image["id"]]
            path = COCO_DIR / image["file_name"]
            if boxes and path.is_file():
                rgb = Image.open(path).convert("RGB")
                samples.append(Sample(path, rgb, np.asarray(boxes, np.float64).reshape(-1, 4)))
    if samples:
        boxes = sum(len(s.boxes) for s in samples)
        return samples, f"the {len(samples)} shared COCO images ({boxes} ground-truth person boxes)"
    image = load_image(tmp / "missing.jpg")  # benchmarks/run.py's textured stand-in
    path = tmp / "synthetic.jpg"
    image.save(path, quality=95)
    boxes = np.asarray(person_boxes(image, 4), np.float64)
    return [Sample(path, Image.open(path).convert("RGB"), boxes)], "a synthetic image (no shared COCO data found)"


def repeated(samples: list[Sample], count: int) -> list[Sample]:
    return [samples[i % len(samples)] for i in range(count)]


# --------------------------------------------------------------------------------------------- models
@dataclass
class Pair:
    """transformers' and vitpose's model with the same weights (one checkpoint on disk), on the device, fp32."""

    hf: Any
    ours: Any
    checkpoint: Path
    name: str
    real_weights: bool


def build_network(preset: str, overrides: dict[str, Any], device: torch.device) -> Any:
    """A random-init vitpose model of a preset, made on the device itself (initialising ViT-H on the CPU takes
    long), in eval mode."""
    from vitpose import VitPoseConfig, VitPoseForPoseEstimation

    config = VitPoseConfig.from_preset(preset, **overrides)
    torch.manual_seed(0)
    with torch.device(device):
        model = VitPoseForPoseEstimation(config)
    return model.eval()


def pair_label(mode: Mode, checkpoint: str | None) -> str:
    return "checkpoint" if checkpoint else "tiny" if mode.pair.startswith("tiny") else "ViT-B"


def make_pair(ctx: Context, checkpoint: str | None) -> Pair:
    with quiet():
        from transformers import VitPoseImageProcessor as HFProcessor

    spec = next(s for s in FULL_SPECS + QUICK_SPECS if s.name == ctx.mode.pair)
    if checkpoint:
        spec = ModelSpec(f"checkpoint {checkpoint}", checkpoint=checkpoint)
    workdir = ctx.tmp / "checkpoint"
    workdir.mkdir(exist_ok=True)
    hf, ours, _ = build_pair(spec, workdir)
    path = Path(checkpoint) if checkpoint else workdir
    if not checkpoint:
        with quiet():
            HFProcessor().save_pretrained(workdir)  # for the documentation's AutoProcessor.from_pretrained
    return Pair(hf.to(ctx.device), ours.to(ctx.device), path, pair_label(ctx.mode, checkpoint), bool(checkpoint))


def cast(model: Any, dtype: str) -> Any:
    """The model itself for fp32, else a copy in `dtype` (the fp32 one stays for the other lines)."""
    return model if dtype == "fp32" else copy.deepcopy(model).to(resolve_dtype(dtype))


def input_shape(model: Any) -> tuple[int, int]:
    return tuple(model.config.backbone_config.image_size)


# --------------------------------------------------------------------------------------------- 1. crops
def bench_crops(ctx: Context) -> None:
    from vitpose import VitPoseImageProcessor
    from vitpose.ops.geometry import box_to_center_scale

    proc = VitPoseImageProcessor()
    rgbs = [np.asarray(s.image) for s in ctx.samples]
    regions = [
        box_to_center_scale(s.boxes, input_size=proc.input_size, padding=proc.padding_factor) for s in ctx.samples
    ]
    centers, scales = [r[0] for r in regions], [r[1] for r in regions]
    resident = ctx.memory.reset()
    on_device = proc.crop_regions(rgbs, centers, scales, device=ctx.device, crop_backend="torch")
    memory = ctx.memory.text(resident)
    cpu = proc.crop_regions(rgbs, centers, scales, crop_backend="cv2")
    # Back to 0-255 grey levels: pixel_values = (x / 255 - mean) / std, so x = 255 (std pixel_values + mean).
    std = torch.tensor(proc.image_std, dtype=torch.float64).view(1, 3, 1, 1) * 255.0  # the mean cancels out
    diff = ((on_device.cpu().double() - cpu.double()) * std).abs()
    differ = float((diff > 0.5).double().mean())
    ctx.table.add(
        1,
        f"crops on {ctx.device.type} (grid_sample) vs the CPU's cv2 crops, {len(cpu)} boxes",
        f"max {float(diff.max()):.3f} grey levels, mean {float(diff.mean()):.4f}",
        memory,
        f"de-normalised to 0-255; {differ:.2%} of the values differ by more than half a grey level",
    )


# --------------------------------------------------------------------------------------------- 2. drift
def all_keypoints(proc: Any, heatmaps: torch.Tensor, boxes: list[np.ndarray]) -> np.ndarray:
    """(N, K, 2) image coordinates of every box of every image, through `post_process_pose_estimation`."""
    results = proc.post_process_pose_estimation(heatmaps.float().cpu(), boxes=boxes)
    return np.stack([person["keypoints"].numpy() for image in results for person in image])


def bench_drift(ctx: Context, pair: Pair) -> None:
    from vitpose import VitPoseImageProcessor

    proc = VitPoseImageProcessor()
    boxes = [s.boxes for s in ctx.samples]
    pixel_values = proc([s.image for s in ctx.samples], boxes=boxes, return_tensors="pt")["pixel_values"]
    pixel_values = pixel_values.to(ctx.device)
    with torch.inference_mode():
        reference = pair.ours(pixel_values).heatmaps.float()
    ref_keypoints = all_keypoints(proc, reference, boxes)
    for dtype in ctx.mode.dtypes:
        if dtype == "fp32":
            continue

        def one(dtype: str = dtype) -> None:
            model = cast(pair.ours, dtype)
            resident = ctx.memory.reset()
            with torch.inference_mode():
                heatmaps = model(pixel_values.to(resolve_dtype(dtype))).heatmaps.float()
            memory = ctx.memory.text(resident)
            relative = float((heatmaps - reference).abs().max() / reference.abs().max())
            distance = np.linalg.norm(all_keypoints(proc, heatmaps, boxes) - ref_keypoints, axis=-1)
            weights = "real weights" if pair.real_weights else "random weights"
            ctx.table.add(
                2,
                f"{dtype} vs fp32, {pair.name}, {len(ref_keypoints)} real crops",
                f"heatmap {relative:.3%} of the max; keypoints max {distance.max():.2f} px, "
                f"mean {distance.mean():.3f} px",
                memory,
                f"{(distance > 1).mean():.1%} of keypoints move > 1 px; {weights}"
                + (": flat heatmaps, the keypoint drift is pessimistic" if weights == "random weights" else ""),
            )

        ctx.attempt(2, f"{dtype} vs fp32 drift, {pair.name}", one)


# --------------------------------------------------------------------------------------------- 3. network
def network_line(ctx: Context, model: Any, name: str, dtype: str, batch: int) -> float:
    """Time the forward of one (model, dtype, batch); add its row; return crops/s."""
    height, width = input_shape(model)
    pixel_values = torch.randn(batch, 3, height, width, device=ctx.device, dtype=resolve_dtype(dtype))
    resident = ctx.memory.reset()
    with torch.inference_mode():
        times = time_pair(
            {"net": synced(lambda: model(pixel_values), ctx.device)},
            timing(ctx.mode.repeats, ctx.mode.warmup, ctx.mode.line_s),
        )
    memory = ctx.memory.text(resident)
    seconds = median(times["net"])
    crops = batch / seconds
    ctx.table.add(
        3,
        f"network, {name}, {dtype}, batch {batch}",
        f"{rate(crops)} crops/s ({ms(seconds)} ms a batch)",
        memory,
        f"median of {len(times['net'])}",
    )
    return crops


def bench_networks(
    ctx: Context, pair: Pair | None, networks: list[tuple[str, str | None, dict[str, Any]]]
) -> dict[tuple[str, str, int], float]:
    """Row 3, eager: every (model, dtype, batch) of `networks`; returns crops/s by (name, dtype, batch)."""
    rates: dict[tuple[str, str, int], float] = {}
    for name, preset, overrides in networks:
        if preset is None:  # the pair's model: it stays fp32 (a copy per dtype) for the other rows
            if pair is None:
                ctx.table.add(3, f"network, {name}", "skipped: the transformers / vitpose pair was not built")
                continue
            fp32, label = pair.ours, pair.name
        else:  # built here, then converted in place: one copy of the weights on the device at a time
            build = functools.partial(build_network, preset, overrides, ctx.device)
            fp32, label = ctx.attempt(3, f"network, {name}: building", build, 4.0), name
            if fp32 is None:
                continue
        for dtype in ctx.mode.dtypes:
            convert = (
                functools.partial(cast, fp32, dtype)
                if preset is None
                else functools.partial(fp32.to, resolve_dtype(dtype))
            )
            model = ctx.attempt(3, f"network, {label}, {dtype}: converting", convert)
            if model is None:
                continue
            for batch in ctx.mode.batches:
                crops = ctx.attempt(
                    3,
                    f"network, {label}, {dtype}, batch {batch}",
                    lambda m=model, n=label, d=dtype, b=batch: network_line(ctx, m, n, d, b),
                    6.0 if name == "ViT-H" else 2.0,
                )
                if crops is not None:
                    rates[(label, dtype, batch)] = crops
            del model
        del fp32
    return rates


def bench_compile(ctx: Context, name: str) -> dict[tuple[str, int], float]:
    """torch.compile of the pair's architecture in a subprocess (a compile error or a crash there stays there; the
    budget kills it), each job a JSON line: compiled and eager crops/s, compile time, peak memory."""
    mode = ctx.mode
    dtype = mode.compile_dtype
    preset, overrides = ("tiny", {"num_hidden_layers": 2}) if name == "tiny" else ("base", {})
    name = "tiny" if name == "tiny" else "ViT-B"  # the architecture (random weights), also with --checkpoint
    seconds = min(MAX_COMPILE_S, ctx.budget.left() - 3.0)
    spec = {
        "device": str(ctx.device),
        "preset": preset,
        "overrides": overrides,
        "dtype": dtype,
        "backend": mode.compile_backend,
        "jobs": list(mode.compile_jobs),
        "seconds": seconds,
        "repeats": mode.repeats,
        "threads": torch.get_num_threads(),
    }
    labels = {job: compile_label(name, dtype, mode.compile_backend, *job) for job in mode.compile_jobs}
    if seconds < 30:
        for label in labels.values():
            ctx.table.add(3, label, "skipped: time budget")
        return {}
    say(f"torch.compile ({mode.compile_backend}) in a subprocess, at most {seconds:.0f} s")
    command = [sys.executable, str(Path(__file__).resolve()), "--compile-worker", json.dumps(spec)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
        timed_out = False
        try:
            out, _ = proc.communicate(timeout=seconds + 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            timed_out = True
    results = {}
    for line in out.splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            record = json.loads(line)
            results[(record["mode"], int(record["batch"]))] = record
    rates: dict[tuple[str, int], float] = {}
    for job, label in labels.items():
        record = results.get(job)
        if record is None:
            why = "skipped: time budget (killed)" if timed_out else f"failed: the worker exited with {proc.returncode}"
            ctx.table.add(3, label, why)
        elif "skipped" in record:
            ctx.table.add(3, label, f"skipped: {record['skipped']}")
        elif "error" in record:
            ctx.table.add(3, label, f"failed: {record['error']}", note=f"after {record.get('seconds', 0):.0f} s")
        else:
            batch = job[1]
            crops = batch / record["compiled_s"]
            rates[job] = crops
            speedup = record["eager_s"] / record["compiled_s"]
            verdict = "helps" if speedup > 1.03 else "no gain: leave it off" if speedup > 0.97 else "slower"
            extra = f"; {record['graph_breaks']} graph breaks" if record.get("graph_breaks") else ""
            if record.get("cudagraph_skips"):
                extra += f"; CUDA graphs skipped {record['cudagraph_skips']}x"
            ctx.table.add(
                3,
                label,
                f"{rate(crops)} crops/s ({speedup:.2f}x eager's {rate(batch / record['eager_s'])} in that process)",
                GpuMemory.describe(record["peak"], record["resident"]) if ctx.memory.on else "n/a (CPU)",
                f"{verdict}; compile {record['compile_s']:.1f} s{extra}",
            )
            ctx.memory.highest = max(ctx.memory.highest, record.get("peak", 0))
    return rates


def compile_label(name: str, dtype: str, backend: str, mode: str, batch: int) -> str:
    how = f'mode="{mode}"' if backend == "inductor" else f'backend="{backend}"'
    return f"network, {name}, {dtype}, batch {batch}, torch.compile({how})"


def compile_worker(spec: dict[str, Any]) -> int:
    """The subprocess of `bench_compile`: one JSON line per job on stdout, as each finishes."""
    warnings.filterwarnings("ignore")
    deadline = time.monotonic() + float(spec["seconds"])
    torch.set_num_threads(int(spec["threads"]))
    device = torch.device(spec["device"])
    dtype = resolve_dtype(spec["dtype"])
    model = build_network(spec["preset"], spec["overrides"], device).to(dtype)
    for mode, batch in spec["jobs"]:
        started = time.monotonic()
        if deadline - started < 15:
            record: dict[str, Any] = {"skipped": "time budget"}
        else:
            try:
                record = compile_job(model, spec["backend"], mode, batch, dtype, device, int(spec["repeats"]))
            except Exception as err:  # reported as its row; the next job goes on
                traceback.print_exc(file=sys.stderr)
                record = {"error": one_line(err), "seconds": time.monotonic() - started}
        print(json.dumps({"mode": mode, "batch": batch, **record}), flush=True)
    return 0


def compile_job(
    model: Any, backend: str, mode: str, batch: int, dtype: torch.dtype, device: torch.device, repeats: int
) -> dict[str, Any]:
    """One compile job in the worker: compile time, then compiled and eager timed back to back."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # each job compiles from scratch (its compile time is its own)
    counters.clear()
    options: dict[str, Any] = {"backend": backend, "dynamic": False}
    if backend == "inductor":
        options["mode"] = mode
    compiled = torch.compile(model, **options)
    step = torch.compiler.cudagraph_mark_step_begin if mode == "reduce-overhead" else (lambda: None)

    def run_compiled() -> Any:
        step()  # CUDA graphs: a new iteration (the previous outputs may be overwritten)
        return compiled(pixel_values)

    height, width = input_shape(model)
    pixel_values = torch.randn(batch, 3, height, width, device=device, dtype=dtype)
    memory = GpuMemory(device)
    with torch.inference_mode():
        start = time.perf_counter()
        run_compiled()
        synchronize(device)
        compile_s = time.perf_counter() - start
        resident = memory.reset()
        times = time_pair(
            {"eager": synced(lambda: model(pixel_values), device), "compiled": synced(run_compiled, device)},
            timing(repeats, 3, 2.0),  # warm-up 3: CUDA graph trees warm up, record, then replay
        )
    peak = torch.cuda.max_memory_allocated(device) if memory.on else 0
    return {
        "compile_s": compile_s,
        "eager_s": median(times["eager"]),
        "compiled_s": median(times["compiled"]),
        "ratio": paired_ratio(times["eager"], times["compiled"]),
        "peak": peak,
        "resident": resident,
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "cudagraph_skips": int(counters["inductor"].get("cudagraph_skips", 0)),
    }


# --------------------------------------------------------------------------------------------- 4. transformers
def bench_transformers_network(ctx: Context, pair: Pair) -> None:
    height, width = input_shape(pair.ours)
    for dtype in ctx.mode.dtypes:
        hf = ctx.attempt(4, f"transformers {pair.name}, {dtype}: converting", functools.partial(cast, pair.hf, dtype))
        ours = ctx.attempt(4, f"vitpose {pair.name}, {dtype}: converting", functools.partial(cast, pair.ours, dtype))
        if hf is None or ours is None:
            continue
        for batch in ctx.mode.hf_batches:

            def one(batch: int = batch, dtype: str = dtype, hf: Any = hf, ours: Any = ours) -> None:
                pixel_values = torch.randn(batch, 3, height, width, device=ctx.device, dtype=resolve_dtype(dtype))
                with torch.inference_mode():
                    resident = ctx.memory.reset()
                    hf(pixel_values=pixel_values)
                    hf_memory = ctx.memory.text(resident)
                    resident = ctx.memory.reset()
                    ours(pixel_values)
                    our_memory = ctx.memory.text(resident)
                    times = time_pair(
                        {
                            "transformers": synced(lambda: hf(pixel_values=pixel_values), ctx.device),
                            "vitpose": synced(lambda: ours(pixel_values), ctx.device),
                        },
                        timing(ctx.mode.repeats, ctx.mode.warmup, 2 * ctx.mode.line_s),
                    )
                th, to = median(times["transformers"]), median(times["vitpose"])
                ctx.table.add(
                    4,
                    f"transformers vs vitpose network, {pair.name}, {dtype}, batch {batch}",
                    f"transformers {rate(batch / th)} crops/s, vitpose {rate(batch / to)} crops/s: "
                    f"{paired_ratio(times['transformers'], times['vitpose']):.2f}x",
                    f"transformers {hf_memory}; vitpose {our_memory}" if ctx.memory.on else "n/a (CPU)",
                    "same weights (one checkpoint); ratio: transformers' time / vitpose's, median over back-to-back "
                    "repetitions",
                )

            ctx.attempt(4, f"transformers vs vitpose network, {pair.name}, {dtype}, batch {batch}", one, 3.0)
        del hf, ours


# --------------------------------------------------------------------------------------------- 5. the pose stage
def bench_stage(ctx: Context, pair: Pair) -> None:
    with quiet():
        from transformers import VitPoseImageProcessor as HFProcessor

        hf_proc = HFProcessor()
    from vitpose import PoseEstimator

    samples = repeated(ctx.samples, ctx.mode.stage_images)
    images = [s.image for s in samples]
    boxes = [s.boxes for s in samples]
    count = sum(len(b) for b in boxes)
    for dtype in ctx.mode.stage_dtypes:

        def one(dtype: str = dtype) -> None:
            hf, ours = cast(pair.hf, dtype), cast(pair.ours, dtype)
            estimator = PoseEstimator(ours)

            def transformers_stage() -> Any:
                inputs = hf_proc(images, boxes=boxes, return_tensors="pt")
                with torch.inference_mode():
                    heatmaps = hf(pixel_values=inputs["pixel_values"].to(ctx.device, resolve_dtype(dtype))).heatmaps
                return hf_proc.post_process_pose_estimation(_Outputs(heatmaps.float()), boxes=boxes)

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                resident = ctx.memory.reset()
                estimator.predict(images, boxes=boxes)
                memory = ctx.memory.text(resident)
                times = time_pair(
                    {
                        "transformers": synced(transformers_stage, ctx.device),
                        "vitpose": synced(lambda: estimator.predict(images, boxes=boxes), ctx.device),
                    },
                    timing(3, 1, 5 * ctx.mode.line_s),
                )
            th, to = median(times["transformers"]), median(times["vitpose"])
            ctx.table.add(
                5,
                f"whole pose stage, {pair.name}, {dtype}, {len(images)} images ({count} boxes)",
                f"vitpose {rate(len(images) / to)} images/s, transformers {rate(len(images) / th)} images/s: "
                f"{paired_ratio(times['transformers'], times['vitpose']):.1f}x",
                memory,
                f"PoseEstimator.predict vs transformers' {type(hf_proc).__name__} + model + post-processing, all "
                "images in one call each",
            )

        ctx.attempt(5, f"whole pose stage, {pair.name}, {dtype}", one, 10.0)


# --------------------------------------------------------------------------------------------- 6. predict
def write_folder(samples: list[Sample], folder: Path, count: int) -> tuple[list[Path], Path, Path, dict[str, Any]]:
    """`count` copies of the images in `folder`, a COCO detections file of their boxes (by image_id) and the
    annotations file mapping those ids to the file names: what `vitpose predict --boxes --annotations` reads."""
    folder.mkdir(parents=True)
    paths, images, detections, boxes_of = [], [], [], {}
    for i, sample in enumerate(repeated(samples, count)):
        path = folder / f"{i:04d}_{sample.path.name}"
        shutil.copyfile(sample.path, path)
        paths.append(path)
        images.append({"id": i + 1, "file_name": path.name, "width": sample.image.width, "height": sample.image.height})
        for box in sample.boxes.tolist():
            detections.append({"image_id": i + 1, "category_id": 1, "bbox": box, "score": 1.0})
        boxes_of[path.name] = sample.boxes.astype(np.float32)
    boxes_file, annotations_file = folder.parent / "boxes.json", folder.parent / "images.json"
    boxes_file.write_text(json.dumps(detections))
    annotations_file.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1}]}))
    return paths, boxes_file, annotations_file, boxes_of


def predict_argv(
    ctx: Context, folder: Path, checkpoint: Path, boxes: Path, annotations: Path, out: Path
) -> tuple[list[str], str]:
    """The `vitpose predict` command line, with --dtype where the command takes it (and what was decided)."""
    from vitpose.cli import build_parser

    base = ["predict", str(folder), "--model", str(checkpoint), "--boxes", str(boxes), "--annotations",
            str(annotations), "--device", str(ctx.device), "--out", str(out)]  # fmt: skip
    dtype = DTYPE_ALIASES[ctx.mode.predict_dtype]
    with_dtype = [*base, "--dtype", dtype]
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args(with_dtype)
            return with_dtype, f"--dtype {dtype}"
        except SystemExit:
            return base, f"--dtype not accepted by vitpose predict yet: ran in fp32 (wanted {dtype})"


def bench_predict(ctx: Context, pair: Pair) -> None:
    from vitpose.cli import main as vitpose_main

    folder = ctx.tmp / "folder" / "images"
    paths, boxes_file, annotations_file, boxes_of = write_folder(ctx.samples, folder, ctx.mode.folder_images)
    count = sum(len(b) for b in boxes_of.values())
    argv, dtype_note = predict_argv(ctx, folder, pair.checkpoint, boxes_file, annotations_file, ctx.tmp / "predict")
    say("vitpose " + " ".join(argv))
    captured = io.StringIO()
    resident = ctx.memory.reset()
    start = time.perf_counter()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        code = vitpose_main(argv)
    synchronize(ctx.device)
    ours_s = time.perf_counter() - start
    memory = ctx.memory.text(resident)
    if code != 0:
        last = [line for line in captured.getvalue().splitlines() if line.strip()][-1:] or ["?"]
        raise RuntimeError(f"vitpose predict exited with {code}: {last[0]}")
    written = len(list((ctx.tmp / "predict").glob("*.jpg")))
    ours_rate = len(paths) / ours_s
    ctx.table.add(
        6,
        f"`vitpose predict` over a folder, {len(paths)} images ({count} boxes), {pair.name}",
        f"{rate(ours_rate)} images/s ({ours_s:.1f} s)",
        memory,
        f"{dtype_note}; model loading, drawing and {written} annotated images included",
    )
    ctx.table.add(7, f"peak GPU memory, the whole `vitpose predict` job ({len(paths)} images)",
                  gib(ctx.memory.last) if ctx.memory.on else "n/a (CPU)", memory)  # fmt: skip

    def doc_loop() -> None:
        deadline = time.monotonic() + max(5.0, min(60.0, ctx.budget.left() - 30.0))
        resident = ctx.memory.reset()
        done, seconds = documentation_loop(pair.checkpoint, paths, boxes_of, ctx.device, ctx.tmp / "doc", deadline)
        memory = ctx.memory.text(resident)
        theirs = done / seconds
        partial = "" if done == len(paths) else f"; stopped after {done} of {len(paths)} images (time budget)"
        ctx.table.add(
            6,
            f"the transformers ViTPose documentation's loop, the same images and boxes, {pair.name}",
            f"{rate(theirs)} images/s ({seconds:.1f} s)",
            memory,
            f"fp32 as the documentation; model loading included{partial}",
        )
        ratio = ours_rate / theirs
        state = "n/a (CPU)" if ctx.device.type == "cpu" else "met" if ratio >= TARGET_PREDICT else "missed"
        ctx.table.add(6, f"target: `vitpose predict` >= {TARGET_PREDICT:.0f}x the documentation's loop",
                      f"{ratio:.1f}x: {state}", "", dtype_note)  # fmt: skip

    ctx.attempt(6, "the transformers ViTPose documentation's loop", doc_loop, 10.0)


def doc_drawing() -> dict[str, Any]:
    """`draw_points`, `draw_links` and the COCO colours of the transformers ViTPose documentation, from its copy in
    examples/ (kept verbatim there and tested against the documentation). Only those definitions are run: the
    file itself downloads models."""
    import ast

    import cv2

    wanted = {"draw_points", "draw_links", "palette", "link_colors", "keypoint_colors"}
    tree = ast.parse(DOC_EXAMPLE.read_text())
    body = [
        node
        for node in tree.body
        if (isinstance(node, ast.FunctionDef) and node.name in wanted)
        or (isinstance(node, ast.Assign) and any(getattr(t, "id", None) in wanted for t in node.targets))
    ]
    namespace: dict[str, Any] = {"np": np, "cv2": cv2, "math": math}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(DOC_EXAMPLE), "exec"), namespace)
    return namespace


def documentation_loop(
    checkpoint: Path,
    paths: list[Path],
    boxes_of: dict[str, np.ndarray],
    device: torch.device,
    out: Path,
    deadline: float,
) -> tuple[int, float]:
    """The transformers ViTPose documentation's stage 2 and drawing, per image, with cv2.imwrite of each result:
    (images done before `deadline`, seconds)."""
    import cv2
    from PIL import Image

    from vitpose.datasets import get_dataset_info

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with quiet():
        from transformers import AutoProcessor, VitPoseForPoseEstimation

        image_processor = AutoProcessor.from_pretrained(str(checkpoint))
        model = VitPoseForPoseEstimation.from_pretrained(str(checkpoint)).to(device)
    draw = doc_drawing()
    keypoint_edges = getattr(model.config, "edges", None) or [list(e) for e in get_dataset_info("coco").skeleton]
    done = 0
    for path in paths:
        if time.monotonic() > deadline:
            break
        image = Image.open(path)
        person_boxes = boxes_of[path.name]
        inputs = image_processor(image, boxes=[person_boxes], return_tensors="pt").to(device)
        with torch.no_grad():
            outputs = model(**inputs)
        pose_results = image_processor.post_process_pose_estimation(outputs, boxes=[person_boxes])
        numpy_image = np.array(image)
        for pose_result in pose_results[0]:
            scores = np.array(pose_result["scores"])
            keypoints = np.array(pose_result["keypoints"])
            draw["draw_points"](numpy_image, keypoints, scores, draw["keypoint_colors"], keypoint_score_threshold=0.3,
                                radius=4, show_keypoint_weight=False)  # fmt: skip
            draw["draw_links"](numpy_image, keypoints, scores, keypoint_edges, draw["link_colors"],
                               keypoint_score_threshold=0.3, thickness=1, show_keypoint_weight=False)  # fmt: skip
        cv2.imwrite(str(out / path.name), cv2.cvtColor(numpy_image, cv2.COLOR_RGB2BGR))
        done += 1
    synchronize(device)
    return done, time.perf_counter() - start


# --------------------------------------------------------------------------------------------- the report
def machine_lines(device: torch.device) -> list[str]:
    versions = module_versions(("transformers",))
    lines = []
    if device.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(device)
        driver = ""
        with contextlib.suppress(Exception):
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", f"--id={device.index or 0}"]
            driver = subprocess.run(query, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        lines.append(
            f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}, "
            f"{props.multi_processor_count} SMs" + (f", driver {driver}" if driver else "")
        )
    else:
        lines.append(f"device: {device} (no GPU in this run)")
    lines.append(
        f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), "
        f"transformers {versions['transformers']}, python {platform.python_version()}; fp32 matmuls: TF32 "
        f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}"
    )
    lines.append(f"host: {cpu_model()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads")
    return lines


def report(header: list[str], table: Table, footer: list[str]) -> str:
    out = ["# vitpose on the GPU: benchmarks/gpu.py", ""] + [f"- {line}" for line in header + footer] + [""]
    return "\n".join(out + table.markdown()) + "\n"


# --------------------------------------------------------------------------------------------- main
def run_all(ctx: Context, args: argparse.Namespace) -> None:
    """Every measurement, the most wanted first (what the budget cuts comes last); the table sorts them by row."""
    ctx.attempt(1, "crops on the device vs the CPU's", lambda: bench_crops(ctx))
    label = pair_label(ctx.mode, args.checkpoint)
    pair = ctx.attempt(4, f"building the transformers / vitpose pair ({label})",
                       lambda: make_pair(ctx, args.checkpoint), 15.0)  # fmt: skip
    rates = bench_networks(ctx, pair, [n for n in ctx.mode.networks if n[1] is None])
    target = ctx.device.type == "cuda" and label == "ViT-B"  # the target is ViT-B's on the GPU
    if target:
        target_line(ctx, rates.get((label, "fp16", 64)), "eager; the paper reports about 900 on an A100")
    if pair is not None:
        bench_transformers_network(ctx, pair)
        ctx.attempt(2, "drift", lambda: bench_drift(ctx, pair), 3.0)
        bench_stage(ctx, pair)
        ctx.attempt(6, "`vitpose predict` over a folder", lambda: bench_predict(ctx, pair), 25.0)
    else:
        for section, what in ((2, "drift"), (5, "whole pose stage"), (6, "`vitpose predict` over a folder")):
            ctx.table.add(section, what, "skipped: the transformers / vitpose pair was not built (see row 4)")
    bench_networks(ctx, pair, [n for n in ctx.mode.networks if n[1] is not None])
    if args.no_compile:
        ctx.table.add(3, "torch.compile", "skipped: --no-compile")
    else:
        compiled = ctx.attempt(3, "torch.compile", lambda: bench_compile(ctx, label), 30.0) or {}
        best = max(((crops, mode) for (mode, batch), crops in compiled.items() if batch == 64), default=None)
        if target and best is not None:
            target_line(ctx, best[0], f'torch.compile(mode="{best[1]}"), the faster mode at batch 64')
    highest = gib(ctx.memory.highest) if ctx.memory.on else "n/a (CPU)"
    ctx.table.add(7, "peak GPU memory, the highest line of this run", highest)


def target_line(ctx: Context, crops: float | None, how: str) -> None:
    state = (
        "not measured" if crops is None else f"{rate(crops)} crops/s: {'met' if crops >= TARGET_CROPS_S else 'missed'}"
    )
    ctx.table.add(3, f"target: ViT-B batch 64 fp16 >= {TARGET_CROPS_S:,.0f} crops/s", state, note=how)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the CPU, tiny models: exercises every line in seconds")
    parser.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda; --quick: cpu)")
    parser.add_argument("--out", help="also write the report to this markdown file")
    parser.add_argument("--budget", type=float, help="seconds for the whole run (default 205; --quick: 100)")
    parser.add_argument("--checkpoint", help="a hub-format ViT-B directory instead of random weights (rows 2, 4-6)")
    parser.add_argument("--images", type=int, help="images in the `vitpose predict` folder (default 200; --quick 8)")
    parser.add_argument("--compile-backend", help="torch.compile backend (default inductor; --quick: eager)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile lines")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's; --quick: 1)")
    parser.add_argument("--compile-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_worker:
        return compile_worker(json.loads(args.compile_worker))

    warnings.filterwarnings("ignore")
    mode = copy.copy(QUICK if args.quick else FULL)
    mode.device = args.device or mode.device
    mode.budget_s = args.budget or mode.budget_s
    mode.folder_images = args.images or mode.folder_images
    mode.compile_backend = args.compile_backend or mode.compile_backend
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.quick:
        torch.set_num_threads(1)  # as benchmarks/run.py --quick: no OpenMP stalls on a busy shared machine
    device = torch.device(mode.device)
    table = Table()
    command = "python benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    code = 0
    with tempfile.TemporaryDirectory(prefix="vitpose_gpu_") as tmp:
        ctx = Context(mode, device, table, Budget(mode.budget_s), GpuMemory(device), Path(tmp))
        if device.type == "cuda" and not torch.cuda.is_available():
            table.add(0, "CUDA", f"failed: torch {torch.__version__} sees no CUDA device: run it on the GPU machine "
                      "with a CUDA build of torch, or use --quick / --device cpu")  # fmt: skip
            code = 1
        else:
            ctx.samples, where = load_samples(Path(tmp))
            say(f"images: {where}; budget {mode.budget_s:.0f} s")
            try:
                run_all(ctx, args)
            except Exception as err:  # a bug between the lines: the table still comes out, saying so
                traceback.print_exc(file=sys.stderr)
                table.add(0, "the run", f"failed: {one_line(err)}")
                code = 1
        header = machine_lines(device)
    footer = [
        f"command: `{command.strip()}`; {'--quick: tiny models on the CPU; ' if args.quick else ''}"
        f"run time {time.monotonic() - STARTED:.0f} s of a {mode.budget_s:.0f} s budget; load average "
        f"{load_average()}",
        "random-init weights (speed does not depend on them)" if not args.checkpoint else f"weights: {args.checkpoint}",
    ]
    text = report(header, table, footer)
    if args.out:
        Path(args.out).write_text(text)
    print(text, end="")
    return code


if __name__ == "__main__":
    sys.exit(main())
