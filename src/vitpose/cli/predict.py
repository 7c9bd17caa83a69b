"""`vitpose predict`: poses in images (files, folders, globs) -> annotated images and predictions.json."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vitpose.cli.common import (
    INTERRUPTED,
    add_detector_options,
    add_engine_options,
    add_model_files,
    add_model_options,
    add_threshold_options,
    estimator_from_args,
)
from vitpose.errors import VitPoseError
from vitpose.outputs import (
    InputFiles,
    Journal,
    atomic_write_bytes,
    atomic_write_text,
    fsync_folder,
    json_text,
    progress_bar,
    protected,
    read_journal,
    settings_changes,
    stop_signal,
)

__all__ = ["PREDICTIONS_NAME", "STATE_NAME", "add_parser", "report_inputs", "run"]

STATE_NAME = "predictions.partial.jsonl"
"""The partial results of a run in progress, in --out: a header line (the settings) and one line per finished
image; removed when the run ends, kept (with a predictions.json of what is done) when it is interrupted."""
PREDICTIONS_NAME = "predictions.json"
RENDER_AHEAD = 8
"""Images drawn, encoded and written ahead of the one being recorded (memory: that many decoded images)."""
COMMIT_SECONDS = 0.25
"""How often finished images are recorded in the journal (one fsync for all of them): a kill (SIGKILL, a crash)
loses at most that much work to redo on --resume; Ctrl-C and SIGTERM lose none."""


def add_parser(subparsers: Any) -> None:
    """Register `predict` (its options and its handler, `run`) on the `vitpose` command's subparsers."""
    predict = subparsers.add_parser(
        "predict",
        help="find the people in images, estimate their poses, write annotated images and predictions.json",
        description="Top-down pose estimation over files, folders and glob patterns. Writes one annotated image per "
        "input and predictions.json (COCO keypoint results, with file_name) to --out. An input that cannot be read "
        "is reported and skipped; the exit code is then 1. Each finished image is recorded at once (its annotated "
        f"copy and a line of --out/{STATE_NAME}); Ctrl-C or SIGTERM stops the run with a predictions.json of the "
        "finished images and exit code 130, and --resume continues it. --out may not hold the inputs: an annotated "
        "copy never replaces an image. With --engine ray the job runs on Ray actors instead (no annotated images; "
        "results sharded in --out/shards, merged into predictions.json, failures in errors.jsonl).",
    )
    predict.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, folders or glob patterns; with --engine ray also list files (.txt, .lst), Parquet and "
        "COCO files naming images, and URIs (s3://, gs://, file://, ...)",
    )
    add_model_options(predict)
    add_detector_options(predict)
    predict.add_argument("--boxes", help="person boxes instead of a detector: COCO detections JSON")
    predict.add_argument("--annotations", help="COCO annotations JSON mapping the --boxes image_id to file names")
    add_threshold_options(predict)
    predict.add_argument("--out", default="vitpose_out", help="output folder (vitpose_out)")
    predict.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out: skip the images it finished and keep their results (the same "
        "inputs and options; the final predictions.json is that of an uninterrupted run)",
    )
    add_engine_options(predict)
    from vitpose.cli.predict_ray import add_ray_options

    add_ray_options(predict)
    predict.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The handler of `vitpose predict`: 0, 1 when some inputs failed, 2 when there is nothing to process, 130 when
    interrupted (Ctrl-C or SIGTERM; what is finished is written, `--resume` continues)."""
    from vitpose.cli.predict_ray import check_engine_options, run_ray

    check_engine_options(args, "predict")
    if args.engine == "ray":
        return run_ray(args)
    from vitpose.integrations.shards import SHARDS_DIR
    from vitpose.media import FailedImage, expand_inputs
    from vitpose.parallel import io_pool, ordered_map

    if (Path(args.out) / SHARDS_DIR).is_dir():
        raise VitPoseError(
            f"{args.out} holds the shards of a run of --engine ray ({Path(args.out) / SHARDS_DIR}): continue it with "
            "--engine ray --resume, or choose another --out"
        )
    paths, failures = expand_inputs(args.inputs)
    if not report_inputs(paths, failures):
        return 2
    out = Path(args.out)
    inputs = InputFiles([("the input image", p) for p in paths])
    for option in ("boxes", "annotations"):
        if getattr(args, option):
            inputs.add(f"the --{option} file", getattr(args, option))
    add_model_files(inputs, args.model)
    planned: set[str] = set()
    inputs.check_outputs(
        [out / PREDICTIONS_NAME, out / STATE_NAME, *(out / _unique_name(Path(p), planned) for p in paths)],
        option=f"--out {out}",
        hint="choose another --out folder (the annotated copies and predictions.json are written there)",
    )
    settings = _settings(args)
    state = _read_state(out, paths, settings, resume=args.resume)  # before the model loads: a refusal is quick
    detector = None  # --detector
    image_ids: dict[str, Any] = {}
    if args.annotations:
        from vitpose.detectors.boxes import read_image_names

        image_ids = {name: image_id for image_id, name in read_image_names(args.annotations).items()}
    if args.boxes:
        from vitpose.detectors import BoxesDetector

        detector = BoxesDetector.from_json(args.boxes, annotations=args.annotations, det_thr=args.det_thr)
        detector.check_inputs(paths)  # before the model loads: ambiguous or missing entries, named
    estimator = estimator_from_args(args, detector)
    out.mkdir(parents=True, exist_ok=True)
    done: dict[int, dict[str, Any]] = state  # position -> its line of the partial results
    used_names = {entry["name"] for entry in done.values()}
    resumed = len(done)
    todo = [position for position in range(len(paths)) if position not in done]
    if resumed:
        print(f"vitpose predict: resuming: {resumed} of {len(paths)} images already done in {out}", file=sys.stderr)
    processed = resumed  # images finished (results or failures), for "stopped after N of M"
    interrupted = False
    journal: Journal | None = None
    stream = progress = None
    rendered = None
    pending: list[dict[str, Any]] = []  # entries whose annotated copies are written, not yet in the journal

    def commit() -> None:
        """Record the images whose annotated copies are written: the folder's fsync (their renames durable),
        then their journal lines with one fsync. Called under `protected()`."""
        if pending:
            fsync_folder(out)
            journal.write_many(pending)
            for entry in pending:
                done[entry["position"]] = entry
            pending.clear()

    try:
        with protected():  # a signal during this block is raised at its end, inside the try: the journal is closed
            journal = Journal(out / STATE_NAME, "predict", settings, [done[p] for p in sorted(done)])
        stream = estimator.iter_predict([paths[p] for p in todo], errors="report", with_images=True)
        progress = progress_bar(total=len(paths), initial=resumed, unit="img", file=sys.stderr)

        def entries() -> Iterator[tuple[Any, Any, Any]]:
            """Each image's entry (in input order: the annotated copies' names are given out in that order)."""
            for position, (result, rgb) in zip(todo, stream, strict=False):
                if isinstance(result, FailedImage):
                    yield result, None, None
                    continue
                path = Path(paths[position])
                entry = {
                    "position": position,
                    "input": paths[position],
                    "name": _unique_name(path, used_names, avoid=lambda name: inputs.find(out / name) is not None),
                    "people": len(result),
                    "predictions": result.to_coco(image_id=image_ids.get(path.name, position + 1)),
                }
                yield entry, result, rgb

        def render(item: tuple[Any, Any, Any]) -> Any:
            """Draw the poses on the image as decoded for the network, encode it and write the annotated copy (on
            the I/O pool; the folder's fsync is left to the commit)."""
            entry, result, rgb = item
            if result is not None:
                encoded = _encode_image(entry["name"], result.draw(rgb, kpt_thr=args.kpt_thr))
                atomic_write_bytes(out / entry["name"], encoded, sync_folder=False)
            return entry

        # Drawing, encoding and writing the annotated copies run on the I/O pool, a few images ahead; the images
        # are recorded here, in input order, in groups (one fsync per COMMIT_SECONDS, not two per image).
        last_commit = time.monotonic()
        rendered = ordered_map(render, entries(), window=RENDER_AHEAD, pool=io_pool())
        for entry in rendered:
            processed += 1
            progress.update(1)
            if isinstance(entry, FailedImage):
                failures.append(entry)
                progress.write(f"vitpose predict: {entry.source}: {entry.reason}", file=sys.stderr)
                continue
            pending.append(entry)
            if time.monotonic() - last_commit >= COMMIT_SECONDS:
                with protected():
                    commit()
                last_commit = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if rendered is not None:
            rendered.close()
        if journal is not None:
            with protected(raise_pending=False):  # the last group: what is written and received is recorded,
                commit()  # at the end of the run and when it is interrupted
        if progress is not None:
            progress.close()
        if stream is not None:
            stream.close()
    with protected(raise_pending=False):  # a second signal now would only lose what is finished
        predictions = [p for position in sorted(done) for p in done[position]["predictions"]]
        atomic_write_text(out / PREDICTIONS_NAME, json_text(predictions))
        if journal is not None:
            journal.close(remove=not interrupted)
        else:  # stopped before the journal started: keep what a resume needs
            Journal(out / STATE_NAME, "predict", settings, [done[p] for p in sorted(done)]).close(remove=False)
    people = sum(entry["people"] for entry in done.values())
    if interrupted:
        print(f"{len(done)} images, {people} poses -> {out / PREDICTIONS_NAME} and annotated images in {out} (partial)")
        _report_failures(failures)
        print(
            f"vitpose predict: interrupted ({stop_signal()}): stopped after {processed} of {len(paths)} images; "
            f"rerun with --resume to continue",
            file=sys.stderr,
        )
        return INTERRUPTED
    print(f"{len(done)} images, {people} poses -> {out / PREDICTIONS_NAME} and annotated images in {out}")
    if failures:
        _report_failures(failures)
        return 1
    return 0


def report_inputs(found: list[Any], failures: list[Any]) -> bool:
    """Say which inputs named no image (each on its line); False, with the error line, when none named any."""
    for failed in failures:
        print(f"vitpose predict: {failed.source}: {failed.reason}", file=sys.stderr)
    if not found:
        print("vitpose predict: error: no image to process", file=sys.stderr)
    return bool(found)


def _report_failures(failures: list[Any]) -> None:
    if failures:
        print(f"vitpose predict: {len(failures)} input(s) failed:", file=sys.stderr)
        for failed in failures:
            print(f"  {failed.source}: {failed.reason}", file=sys.stderr)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """What decides the results (not the device or the batch size): a resumed run must have the same."""
    from vitpose.cli.common import network_dtype
    from vitpose.device import dtype_name

    dataset = args.dataset
    if dataset is not None and not isinstance(dataset, str | int):
        dataset = getattr(dataset, "name", str(dataset))
    real = {
        k: None if getattr(args, k) is None else os.path.realpath(getattr(args, k)) for k in ("boxes", "annotations")
    }
    return {
        "model": args.model,
        "dataset": dataset,
        "flip_test": bool(args.flip_test),
        "detector": args.detector,
        **real,
        "det_thr": args.det_thr,
        "nms_thr": None if args.no_nms else args.nms_thr,
        "kpt_thr": args.kpt_thr,
        "dtype": dtype_name(network_dtype(args)),  # fp16 / bf16 results differ a little from float32's
    }


def _read_state(out: Path, paths: list[str], settings: dict[str, Any], resume: bool) -> dict[int, dict[str, Any]]:
    """The finished images of an interrupted run in `out` (position -> line), checked against this run; {} for a
    fresh run. Refuses a fresh run over an interrupted one (it would drop its results) and a --resume that cannot
    continue it."""
    state_file = out / STATE_NAME
    if not state_file.is_file():
        if resume and (out / PREDICTIONS_NAME).is_file():
            raise VitPoseError(
                f"--resume: nothing to resume in {out}: its {PREDICTIONS_NAME} is from a run that finished (no "
                f"{STATE_NAME}); run without --resume to predict again"
            )
        return {}
    then, entries = read_journal(state_file, "predict")
    if not resume:
        raise VitPoseError(
            f"{out} holds an interrupted run ({len(entries)} images done, {state_file}): add --resume to continue "
            "it, or choose another --out (or remove that file) to start again"
        )
    names = settings_changes(then, settings)
    if names:
        raise VitPoseError(
            f"--resume: the interrupted run in {out} had other settings: {names}; resume with the same options, or "
            "choose another --out"
        )
    done: dict[int, dict[str, Any]] = {}
    for entry in entries:
        position = entry.get("position")
        if not isinstance(position, int) or not 0 <= position < len(paths) or paths[position] != entry.get("input"):
            raise VitPoseError(
                f"--resume: the inputs differ from the interrupted run's in {out} (its image {entry.get('input')!r} "
                f"is not input {position} now): give the same inputs, or choose another --out"
            )
        done[position] = entry
    return done


def _unique_name(path: Path, used: set[str], avoid: Callable[[str], bool] | None = None) -> str:
    """The annotated image's file name: the input's name (.png for formats other than JPEG, PNG, BMP), numbered
    where an earlier image of the run took it (or where `avoid(name)`: it would replace an input)."""
    suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else ".png"
    name, i = path.stem + suffix, 1
    while name in used or (avoid is not None and avoid(name)):
        name, i = f"{path.stem}_{i}{suffix}", i + 1
    used.add(name)
    return name


def _encode_image(name: str, rgb: Any) -> bytes:
    from vitpose.media import encode_image

    return encode_image(rgb, Path(name).suffix)
