"""`vitpose predict --engine ray`: the same predictions on a Ray cluster (or a local Ray), sharded as the job goes.

Detection and pose run as Ray Data actor pools (`vitpose.integrations.ray.predict_dataset`); this process reads
the finished rows and writes them into --out as shards with a journal (`vitpose.integrations.shards`), then merges
them into the predictions.json the local path writes and an errors.jsonl. No annotated images are drawn.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from vitpose.cli.common import INTERRUPTED
from vitpose.errors import VitPoseError

__all__ = ["ENGINE_OPTIONS", "RAY_ONLY_OPTIONS", "add_ray_options", "check_engine_options", "run_ray"]

ENGINE_OPTIONS = {"address": None, "actors": 1, "replicas": 1, "num_cpus": None, "num_gpus": 0.0}
"""The options of `add_engine_options` that only `--engine ray` reads, with their defaults."""
RAY_ONLY_OPTIONS = {
    **ENGINE_OPTIONS,
    "detect_actors": 1,
    "detect_num_cpus": 0.5,
    "detect_num_gpus": 0.0,
    "shard_format": "jsonl",
    "shard_size": 256,
    "images": None,
}
"""The options that only `vitpose predict --engine ray` reads, with their defaults (given with the local engine:
refused)."""


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """The detection actors, the shards and --images (the options of --engine ray beyond `add_engine_options`)."""
    from vitpose.cli.common import non_negative_float, positive_float, positive_int
    from vitpose.integrations.shards import SHARD_FORMATS

    parser.add_argument("--detect-actors", type=positive_int, default=1, help="--engine ray: detection actors (1)")
    parser.add_argument(
        "--detect-num-cpus", type=positive_float, default=0.5, help="--engine ray: CPUs per detection actor (0.5)"
    )
    parser.add_argument(
        "--detect-num-gpus", type=non_negative_float, default=0.0, help="--engine ray: GPUs per detection actor (0)"
    )
    parser.add_argument(
        "--shard-format",
        choices=list(SHARD_FORMATS),
        default="jsonl",
        help="--engine ray: the format of the result shards in --out/shards (jsonl)",
    )
    parser.add_argument(
        "--shard-size",
        type=positive_int,
        default=256,
        help="--engine ray: images per shard; a killed job loses at most the shard being gathered (256)",
    )
    parser.add_argument(
        "--images",
        help="--engine ray: the folder the relative paths of a list, Parquet or COCO input file are under "
        "(default: that file's folder)",
    )


def check_engine_options(args: argparse.Namespace, command: str) -> None:
    """Refuse options of --engine ray given with the local engine (they would silently do nothing)."""
    if args.engine == "ray":
        return
    options = RAY_ONLY_OPTIONS if command == "predict" else ENGINE_OPTIONS
    given = [name for name, default in options.items() if getattr(args, name, default) != default]
    if given:
        names = ", ".join("--" + name.replace("_", "-") for name in given)
        raise VitPoseError(f"{names}: only with --engine ray (vitpose {command} runs in this process by default)")


def run_ray(args: argparse.Namespace) -> int:
    """`vitpose predict --engine ray`: 0, 1 when some inputs failed, 2 when there is nothing to process, 130 when
    interrupted (what is finished is written; --resume continues)."""
    from vitpose.cli.common import add_model_files, estimator_from_args, worker_cpus
    from vitpose.cli.predict import PREDICTIONS_NAME, STATE_NAME, _settings, report_inputs
    from vitpose.integrations.ray import predict_dataset, ray_session, require_ray
    from vitpose.integrations.shards import ERRORS_NAME, SHARDS_DIR, ImageRecord, ShardedResults
    from vitpose.integrations.sources import expand_job_inputs, is_uri
    from vitpose.outputs import InputFiles, progress_bar, protected, stop_signal

    require_ray(args.address)  # before anything else: one line naming the extra, and Ray's settings
    refs, failures = expand_job_inputs(args.inputs, images=args.images)
    if not report_inputs(refs, failures):
        return 2
    out = Path(args.out)
    paths = [ref.path for ref in refs]
    # The files named on the command line (not every image of a list: a million-image job would stat each one
    # here); the outputs have fixed names that no image has.
    inputs = InputFiles()
    for option in ("boxes", "annotations"):
        if getattr(args, option):
            inputs.add(f"the --{option} file", getattr(args, option))
    for source in args.inputs:
        if not is_uri(source) and Path(source).is_file():
            inputs.add("an input file", source)
    add_model_files(inputs, args.model)
    inputs.check_outputs(
        [out / PREDICTIONS_NAME, out / ERRORS_NAME, out / SHARDS_DIR],
        option=f"--out {out}",
        hint="choose another --out folder (predictions.json, errors.jsonl and the shards are written there)",
    )
    if (out / STATE_NAME).is_file():
        raise VitPoseError(
            f"{out} holds an interrupted run of the local engine ({out / STATE_NAME}): continue it with --resume "
            "without --engine ray, or choose another --out"
        )
    results = ShardedResults(out, _settings(args), resume=args.resume, shard_format=args.shard_format)
    results.check_inputs(paths)
    done = results.done()
    todo = [position for position in range(len(refs)) if position not in done]
    if done:
        print(f"vitpose predict: resuming: {len(done)} of {len(refs)} images already done in {out}", file=sys.stderr)

    detections: dict[int, Any] | None = None  # position -> the --boxes file's Detections
    given_failures: dict[int, str] = {}
    if args.boxes and todo:
        detections, given_failures = _given_detections(args, [paths[p] for p in todo], todo)
    estimator = None
    if todo:
        args.device = "cpu"  # loaded here once, checked, and shipped to the actors, which place (and cast) it
        estimator = estimator_from_args(args, detector="full-image")
    image_ids = [ref.image_id if ref.image_id is not None else position + 1 for position, ref in enumerate(refs)]
    if args.annotations:  # as the local path: the --annotations file names the images' ids
        from vitpose.detectors.boxes import read_image_names

        by_name = {name: image_id for image_id, name in read_image_names(args.annotations).items()}
        image_ids = [by_name.get(Path(path).name, image_id) for path, image_id in zip(paths, image_ids, strict=True)]
    interrupted = False
    processed = len(done)
    pending_images: list[ImageRecord] = []
    pending_people: list[dict[str, Any]] = []

    def flush() -> None:
        if pending_images:
            with protected():  # the shard and its journal line together
                results.write_shard(pending_images, pending_people)
            pending_images.clear()
            pending_people.clear()

    progress = progress_bar(total=len(refs), initial=len(done), unit="img", file=sys.stderr)
    try:
        if given_failures:
            for position, reason in given_failures.items():
                pending_images.append(ImageRecord(position, paths[position], None, 0, reason))
        runnable = [p for p in todo if p not in given_failures]
        if runnable:
            with ray_session(args.address) as ray:
                rows = predict_dataset(
                    [refs[p] for p in runnable],
                    estimator,
                    detector=args.detector,
                    det_thr=args.det_thr,
                    dtype=args.dtype,  # resolved on each pose actor's device: auto = float16 on a GPU
                    detect_actors=args.detect_actors,
                    detect_cpus=args.detect_num_cpus,
                    detect_gpus=args.detect_num_gpus,
                    pose_actors=args.actors,
                    pose_cpus=worker_cpus(args),
                    pose_gpus=args.num_gpus,
                    images_per_batch=max(1, min(16, args.batch_size // 4)),
                    positions=runnable,
                    image_ids=[image_ids[p] for p in runnable],
                    detections=None if detections is None else [detections[p] for p in runnable],
                )
                del ray
                last = time.monotonic()
                for row in rows.iter_rows():
                    position = int(row["position"])
                    error = row["error"] or None
                    people = [] if error else json.loads(row["predictions"])
                    for person in people:
                        person["path"] = paths[position]
                    image_id = row["image_id"] if isinstance(row["image_id"], str) else int(row["image_id"])
                    pending_images.append(ImageRecord(position, paths[position], image_id, len(people), error))
                    pending_people.extend(people)
                    processed += 1
                    progress.update(1)
                    if error:
                        progress.write(f"vitpose predict: {paths[position]}: {error}", file=sys.stderr)
                    if len(pending_images) >= args.shard_size or time.monotonic() - last > 60:
                        flush()
                        last = time.monotonic()
        flush()
    except KeyboardInterrupt:
        interrupted = True
        with protected(raise_pending=False):
            flush()  # the rows that arrived are finished results: kept
    finally:
        progress.close()
    with protected(raise_pending=False):
        people = results.merge(out / PREDICTIONS_NAME, out / ERRORS_NAME, [(f.source, f.reason) for f in failures])
        results.close()
    finished = len(results.done())
    failed = results.failed()
    where = f"{out / PREDICTIONS_NAME} (errors: {out / ERRORS_NAME}, shards: {out / SHARDS_DIR})"
    if interrupted:
        print(f"{finished} images, {people} poses -> {where} (partial)")
        print(
            f"vitpose predict: interrupted ({stop_signal()}): stopped after {processed} of {len(refs)} images; "
            "rerun with --resume to continue",
            file=sys.stderr,
        )
        return INTERRUPTED
    print(f"{finished} images, {people} poses -> {where}")
    if failed or failures:
        print(
            f"vitpose predict: {len(failed) + len(failures)} input(s) failed (listed in {out / ERRORS_NAME})",
            file=sys.stderr,
        )
        for record in failed.values():
            print(f"  {record.path}: {record.error}", file=sys.stderr)
        for item in failures:
            print(f"  {item.source}: {item.reason}", file=sys.stderr)
        return 1
    return 0


def _given_detections(
    args: argparse.Namespace, paths: list[str], positions: list[int]
) -> tuple[dict[int, Any], dict[int, str]]:
    """The --boxes file's detections of each image (position -> `Detections`), looked up here by name (no image is
    read), and the images it has no entry for (position -> reason), as the local path reports them."""
    import numpy as np

    from vitpose.detectors import BoxesDetector

    detector = BoxesDetector.from_json(args.boxes, annotations=args.annotations, det_thr=args.det_thr)
    detector.check_inputs(paths)
    pixel = np.zeros((1, 1, 3), np.uint8)  # the boxes are looked up by file name; no image is needed
    found: dict[int, Any] = {}
    failures: dict[int, str] = {}
    for position, path in zip(positions, paths, strict=True):
        try:
            found[position] = detector([pixel], [path])[0]
        except ValueError as err:
            failures[position] = str(err)
    return found, failures
