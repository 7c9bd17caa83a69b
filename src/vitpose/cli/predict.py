"""`vitpose predict`: poses in images (files, folders, globs) -> annotated images and predictions.json."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vitpose.cli.common import add_detector_options, add_model_options, add_threshold_options, estimator_from_args

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register `predict` (its options and its handler, `run`) on the `vitpose` command's subparsers."""
    predict = subparsers.add_parser(
        "predict",
        help="find the people in images, estimate their poses, write annotated images and predictions.json",
        description="Top-down pose estimation over files, folders and glob patterns. Writes one annotated image per "
        "input and predictions.json (COCO keypoint results, with file_name) to --out. An input that cannot be read "
        "is reported and skipped; the exit code is then 1.",
    )
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    add_model_options(predict)
    add_detector_options(predict)
    predict.add_argument("--boxes", help="person boxes instead of a detector: COCO detections JSON")
    predict.add_argument("--annotations", help="COCO annotations JSON mapping the --boxes image_id to file names")
    add_threshold_options(predict)
    predict.add_argument("--out", default="vitpose_out", help="output folder (vitpose_out)")
    predict.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The handler of `vitpose predict`: 0, 1 when some inputs failed, 2 when there is nothing to process."""
    from tqdm import tqdm

    from vitpose.media import FailedImage, expand_inputs, load_image

    paths, failures = expand_inputs(args.inputs)
    for failed in failures:
        print(f"vitpose predict: {failed.source}: {failed.reason}", file=sys.stderr)
    if not paths:
        print("vitpose predict: error: no image to process", file=sys.stderr)
        return 2
    detector = None  # --detector
    image_ids: dict[str, Any] = {}
    if args.annotations:
        from vitpose.detectors.boxes import read_image_names

        image_ids = {name: image_id for image_id, name in read_image_names(args.annotations).items()}
    if args.boxes:
        from vitpose.detectors import BoxesDetector

        detector = BoxesDetector.from_json(args.boxes, annotations=args.annotations, det_thr=args.det_thr)
    estimator = estimator_from_args(args, detector)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictions: list[dict] = []
    used_names: set[str] = set()
    people = 0
    done = 0
    progress = tqdm(estimator.iter_predict(paths, errors="report"), total=len(paths), unit="img", file=sys.stderr)
    for position, result in enumerate(progress):
        if isinstance(result, FailedImage):
            failures.append(result)
            progress.write(f"vitpose predict: {result.source}: {result.reason}", file=sys.stderr)
            continue
        path = Path(paths[position])
        image_id = image_ids.get(path.name, position + 1)
        predictions.extend(result.to_coco(image_id=image_id))
        rgb, _ = load_image(path)
        name = _unique_name(path, used_names)
        _write_image(out / name, result.draw(rgb, kpt_thr=args.kpt_thr))
        people += len(result)
        done += 1
    (out / "predictions.json").write_text(json.dumps(predictions))
    print(f"{done} images, {people} poses -> {out / 'predictions.json'} and annotated images in {out}")
    if failures:
        print(f"vitpose predict: {len(failures)} input(s) failed:", file=sys.stderr)
        for failed in failures:
            print(f"  {failed.source}: {failed.reason}", file=sys.stderr)
        return 1
    return 0


def _unique_name(path: Path, used: set[str]) -> str:
    suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else ".png"
    name, i = path.stem + suffix, 1
    while name in used:
        name, i = f"{path.stem}_{i}{suffix}", i + 1
    used.add(name)
    return name


def _write_image(path: Path, rgb: Any) -> None:
    import cv2

    if not cv2.imwrite(str(path), rgb[:, :, ::-1]):
        raise OSError(f"cannot write {path}")
