#!/usr/bin/env python
"""Benchmark of `vitpose predict --engine ray` against the local path, side by side in one run.

    python benchmarks/ray_engine.py                 # ViT-S (random weights), 240 images (about 10 minutes here)
    python benchmarks/ray_engine.py --quick --out /tmp/ray_quick.md   # tiny model, 24 images (about a minute)

Inputs: a folder of N copies of the shared COCO photos (640 px wide), the full-image detector (one person crop per
image: the job is the pose stage), a random-init checkpoint in the hub format (speed does not depend on the weights).

Measured, in this order, each on an otherwise idle machine (the Ray runs start their own local Ray):
  - local: `PoseEstimator.iter_predict` over the folder in this process (2 torch threads, as `vitpose predict`
    runs its pose stage), after loading the model (timed apart); and the whole `vitpose predict` command (which
    also draws and writes an annotated copy of every image), as a subprocess;
  - Ray, in this process: `ray_session()` (start-up of a local Ray), then `predict_dataset` with A pose actors
    (0.5 CPU each, so that Ray's reading tasks keep a CPU) consumed row by row, the time of every row recorded:
    start-up = until the first row (actors start, the model travels through the object store), steady state =
    the rows after the first 10% over their time; the same for 1 actor (per-actor throughput for the sizing table);
  - the whole `vitpose predict --engine ray --actors A` command as a subprocess (its shards, merge and Ray's
    start and stop included), and its predictions compared with the local command's (max keypoint difference).

Ratios: Ray's steady-state images/s over the local in-process images/s (target >= 0.85), and the commands' wall
times. Writes a markdown report (default benchmarks/RAY_RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SHARED_COCO = HERE.parent.parent / "shared" / "data" / "coco"

from machine import cpu_model, load_average, module_versions  # noqa: E402
from serve_load import build_checkpoint  # noqa: E402


def make_folder(folder: Path, count: int) -> list[str]:
    sources = sorted(SHARED_COCO.glob("*.jpg"))
    if not sources:
        raise SystemExit(f"no images in {SHARED_COCO}: the shared data must lie beside the repository")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        target = folder / f"img_{i:05d}.jpg"
        shutil.copy(sources[i % len(sources)], target)
        paths.append(str(target))
    return paths


def local_in_process(model: Path, paths: list[str]) -> dict:
    import torch

    from vitpose.inference.estimator import PoseEstimator

    start = time.perf_counter()
    estimator = PoseEstimator.from_pretrained(model, device="cpu", detector="full-image")
    loaded = time.perf_counter() - start
    list(estimator.iter_predict(paths[:4]))  # warm-up (first-call allocations), as Ray's actors get theirs
    start = time.perf_counter()
    count = sum(1 for _ in estimator.iter_predict(paths, errors="report"))
    elapsed = time.perf_counter() - start
    return {"load_s": loaded, "images": count, "seconds": elapsed, "rate": count / elapsed,
            "threads": torch.get_num_threads()}  # fmt: skip


def ray_in_process(model: Path, paths: list[str], actors: int, cpus: float) -> dict:
    from vitpose.inference.estimator import PoseEstimator
    from vitpose.integrations.ray import predict_dataset, ray_session

    start = time.perf_counter()
    with ray_session(num_cpus=os.cpu_count()):
        started = time.perf_counter() - start
        estimator = PoseEstimator.from_pretrained(model, device="cpu", detector="full-image")
        begin = time.perf_counter()
        rows = predict_dataset(paths, estimator, detector="full-image", pose_actors=actors, pose_cpus=cpus,
                               detect_cpus=0.25)  # fmt: skip
        times = []
        errors = 0
        for row in rows.iter_rows():
            times.append(time.perf_counter() - begin)
            errors += bool(row["error"])
    stopped = time.perf_counter() - start - started - times[-1]
    skip = max(1, len(times) // 10)
    steady = (len(times) - skip) / (times[-1] - times[skip - 1])
    return {"actors": actors, "cpus": cpus, "ray_start_s": started, "first_row_s": times[0], "total_s": times[-1],
            "steady_rate": steady, "overall_rate": len(times) / times[-1], "errors": errors,
            "shutdown_s": stopped}  # fmt: skip


def command(args: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vitpose", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"vitpose {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def max_difference(a: Path, b: Path) -> tuple[int, float]:
    got, want = (json.loads((p / "predictions.json").read_text()) for p in (a, b))
    if len(got) != len(want):
        raise SystemExit(f"the Ray run gave {len(got)} people, the local one {len(want)}")
    worst = 0.0
    for x, y in zip(got, want, strict=True):
        if (x["image_id"], x.get("file_name")) != (y["image_id"], y.get("file_name")):
            raise SystemExit(f"different images: {x['image_id']} vs {y['image_id']}")
        worst = max(worst, float(np.max(np.abs(np.asarray(x["keypoints"]) - np.asarray(y["keypoints"])))))
    return len(got), worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, 24 images: keeps the script working")
    parser.add_argument("--images", type=int, help="images in the folder (default 240; --quick 24)")
    parser.add_argument("--actors", type=int, default=2, help="pose actors of the Ray runs (2: one per core here)")
    parser.add_argument("--out", help="the markdown report (default benchmarks/RAY_RESULTS.md)")
    args = parser.parse_args(argv)
    count = args.images or (24 if args.quick else 240)
    out = Path(args.out) if args.out else HERE / "RAY_RESULTS.md"
    load_before = load_average()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vitpose-raybench-") as tmp:
        workdir = Path(tmp)
        model, model_name = build_checkpoint(workdir / "model", tiny=args.quick)
        paths = make_folder(workdir / "images", count)
        print(f"{count} images, {model_name}", file=sys.stderr)
        local = local_in_process(model, paths)
        print(f"local in-process: {local['rate']:.2f} img/s", file=sys.stderr)
        ray_pool = ray_in_process(model, paths, args.actors, 0.5)
        print(f"ray {args.actors} actors: {ray_pool['steady_rate']:.2f} img/s steady", file=sys.stderr)
        ray_one = ray_in_process(model, paths, 1, 1.0)
        print(f"ray 1 actor: {ray_one['steady_rate']:.2f} img/s steady", file=sys.stderr)
        base = [str(workdir / "images"), "--model", str(model), "--detector", "full-image"]
        local_cmd = command(["predict", *base, "--device", "cpu", "--out", str(workdir / "local")])
        ray_args = ["--engine", "ray", "--actors", str(args.actors), "--out", str(workdir / "ray")]
        ray_cmd = command(["predict", *base, *ray_args])
        people, worst = max_difference(workdir / "ray", workdir / "local")
    import torch

    ratio = ray_pool["steady_rate"] / local["rate"]
    versions = module_versions(("torch", "ray", "numpy"))
    lines = [
        "# vitpose predict --engine ray: benchmark",
        "",
        f"Command: `python benchmarks/ray_engine.py{' --quick' if args.quick else ''}"
        f"{f' --images {args.images}' if args.images else ''}`",
        "",
        "| machine | |",
        "| --- | --- |",
        f"| CPU | {cpu_model()} |",
        f"| logical cores | {os.cpu_count()} |",
        f"| python | {platform.python_version()} |",
        *(f"| {name} | {version} |" for name, version in versions.items()),
        f"| load average (start -> end) | {load_before} -> {load_average()} |",
        f"| run time | {time.perf_counter() - started:.0f} s |",
        f"| model | {model_name} |",
        f"| inputs | {count} copies of the shared COCO photos (640 px wide), full-image detector: one crop each |",
        "",
        "## Target: Ray's overhead",
        "",
        "| | images/s | note |",
        "| --- | --- | --- |",
        f"| local, `PoseEstimator` in one process ({local['threads']} torch threads) | {local['rate']:.2f} | "
        f"model load {local['load_s']:.2f} s apart |",
        f"| Ray, {args.actors} pose actors x 0.5 CPU, steady state | {ray_pool['steady_rate']:.2f} | "
        f"**{ratio:.2f}x local ({'met' if ratio >= 0.85 else 'missed'}: >= 0.85)** |",
        f"| Ray, {args.actors} actors, whole dataset incl. actor start | {ray_pool['overall_rate']:.2f} | "
        f"first row after {ray_pool['first_row_s']:.1f} s |",
        f"| Ray, 1 pose actor x 1 CPU, steady state | {ray_one['steady_rate']:.2f} | per-actor figure |",
        "",
        "Start-up vs steady state (Ray, in-process runs):",
        "",
        "| | local Ray start | to the first row | whole job | Ray shutdown |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r['actors']} actor(s) x {r['cpus']} CPU | {r['ray_start_s']:.1f} s | {r['first_row_s']:.1f} s | "
            f"{r['total_s']:.1f} s | {r['shutdown_s']:.1f} s |"
            for r in (ray_pool, ray_one)
        ),
        "",
        "Whole commands (subprocesses, start to exit):",
        "",
        "| command | wall time | images/s |",
        "| --- | --- | --- |",
        f"| `vitpose predict` (local; also draws and writes {count} annotated images) | {local_cmd:.1f} s | "
        f"{count / local_cmd:.2f} |",
        f"| `vitpose predict --engine ray --actors {args.actors}` (local Ray started and stopped; shards, merge) | "
        f"{ray_cmd:.1f} s | {count / ray_cmd:.2f} |",
        "",
        f"Same results: {people} people, max keypoint difference {worst:.2g} px between the two commands' "
        "predictions.json.",
        "",
    ]
    del torch
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
