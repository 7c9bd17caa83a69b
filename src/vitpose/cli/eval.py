"""`vitpose eval`: score a model on an annotated data set (COCO AP, WholeBody part AP, MPII PCKh), or a results file."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from vitpose.cli.common import (
    DEFAULT_MODEL,
    INTERRUPTED,
    add_engine_options,
    add_model_files,
    add_model_options,
    add_threshold_options,
    network_dtype,
)
from vitpose.errors import VitPoseError
from vitpose.outputs import (
    InputFiles,
    Journal,
    atomic_write_text,
    files_of,
    protected,
    read_journal,
    settings_changes,
    stop_signal,
)

__all__ = ["PARTIAL_SUFFIX", "add_parser", "run"]

PARTIAL_SUFFIX = ".partial.jsonl"
"""The partial results of a run in progress, next to --out (`P.json` -> `P.json.partial.jsonl`): a header line (the
settings) and one line per finished image; removed when the run ends, kept when it is interrupted (--resume)."""


def add_parser(subparsers: Any) -> None:
    """Register `eval` (its options and its handler, `run`) on the `vitpose` command's subparsers."""
    ev = subparsers.add_parser(
        "eval",
        help="score a model on an annotated data set (COCO AP, WholeBody part AP, MPII PCKh), as the original",
        description="Run a model over the images of a COCO-format keypoint file (or an MPII list) with ground-truth "
        "or detected person boxes, rescore, apply OKS-NMS and score with pycocotools (data-set sigmas), as the "
        "original ViTPose evaluation. With --predictions, score an existing COCO results file instead (no model, "
        "no rescoring, no NMS).",
    )
    # --model unset by default: --predictions refuses it when it is given.
    add_model_options(ev, model=None, dataset_note=" (default: inferred from the annotations)")
    ev.add_argument("--annotations", required=True, help="COCO-format keypoint annotations, or MPII JSON list")
    ev.add_argument("--images", help="folder of the annotated images")
    ev.add_argument("--detections", help="COCO detections file for the person boxes (default: ground-truth boxes)")
    ev.add_argument("--predictions", help="score this COCO keypoint results file (no model)")
    add_threshold_options(ev, det_thr=0.0, kpt_thr=None)  # 0.0: every detection, as the original
    ev.add_argument("--headboxes", help="MPII: the official mpii_gt_val.mat with the head boxes of PCKh")
    ev.add_argument(
        "--out",
        help="write the scored predictions (JSON) here (atomically); each finished image is recorded at once in "
        f"OUT{PARTIAL_SUFFIX}; on Ctrl-C or SIGTERM, the predictions of the images done, no metrics, exit code 130, "
        "and --resume continues",
    )
    ev.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run of --out: skip the images it finished (the same model, inputs and "
        "options; the metrics and --out are those of an uninterrupted run)",
    )
    ev.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    add_engine_options(ev)
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The handler of `vitpose eval`: 0, 130 when interrupted; raises VitPoseError/OSError on bad input."""
    from vitpose.cli.predict_ray import check_engine_options

    check_engine_options(args, "eval")
    if args.predictions:
        if args.engine != "local":
            raise VitPoseError("--predictions scores a results file, with no model to run: drop --engine")
        return _score_file(args)
    if not args.images:
        raise VitPoseError(
            "--images DIR is needed to run a model (or pass --predictions P.json to score a results file)"
        )
    _check_out(args)
    settings = _settings(args)
    journal = _Journal(args.out, settings, resume=args.resume) if args.out else None  # before the model loads
    if args.resume and journal is None:
        raise VitPoseError("--resume needs the --out FILE of the interrupted run (its partial results are beside it)")
    if journal is not None and journal.done:
        print(f"vitpose eval: resuming: {len(journal.done)} images already done ({journal.path})", file=sys.stderr)
    with contextlib.ExitStack() as engine:
        runner = None
        if args.engine == "ray":
            from vitpose.cli.common import worker_cpus
            from vitpose.integrations.ray import RayRunner, ray_session

            engine.enter_context(ray_session(args.address))
            runner = RayRunner(args.actors, num_cpus=worker_cpus(args), num_gpus=args.num_gpus, dtype=args.dtype)
            args.device = "cpu"  # the model is loaded here for its checks, and shipped to the actors (in --dtype there)
        return _evaluate(args, journal, runner)


def _evaluate(args: argparse.Namespace, journal: _Journal | None, runner: Any) -> int:
    """Run the evaluation (with `runner`: where the network runs, None for here), journal it, print the metrics."""
    from vitpose.evaluation import EvaluationInterrupted, evaluate

    try:
        report = evaluate(
            _load(args),
            args.annotations,
            args.images,
            detections=args.detections,
            dataset=args.dataset,
            flip_test=args.flip_test,
            batch_size=args.batch_size,
            device=args.device,
            progress=not args.json or sys.stderr.isatty(),
            det_thr=args.det_thr,
            nms_thr=None if args.no_nms else args.nms_thr,
            headboxes=args.headboxes,
            finished=journal.done if journal is not None else None,
            on_image=journal.write if journal is not None else None,
            runner=runner,
        )
    except EvaluationInterrupted as stop:
        where = f"stopped after {stop.done} of {stop.total} images; no metrics (they need every image)"
        if journal is not None:
            with protected(raise_pending=False):
                _write_predictions(args.out, stop.predictions)
                journal.close(remove=False)
            where += f"; the predictions of the {stop.done} image{'s' if stop.done != 1 else ''} done are in {args.out}"
            where += "; rerun with --resume to continue"
        else:
            where += " (give --out FILE to keep the predictions of the images done and to be able to --resume)"
        print(f"vitpose eval: interrupted ({stop_signal()}): {where}", file=sys.stderr)
        return INTERRUPTED
    except BaseException:
        if journal is not None and journal.started:
            journal.close(remove=False)  # an error after some images: they are kept for --resume
        raise
    for note in report.notes:
        print(f"vitpose eval: note: {note}", file=sys.stderr)
    if journal is not None:
        with protected():
            _write_predictions(args.out, report.predictions)
            journal.close(remove=True)  # a finished run leaves no partial results
    if args.json:
        print(json.dumps(report.metrics))
    else:
        print(
            f"{report.dataset.display_name or report.dataset.name}: {report.num_images} images, "
            f"{report.num_instances} instances{', flip test' if args.flip_test else ''}"
            + (f"; predictions written to {args.out}" if args.out else "")
        )
        print(report.table())
    return 0


def _load(args: argparse.Namespace) -> Any:
    """The --model checkpoint on --device in --dtype, as `evaluate` would load it (the processor of a hub-format
    checkpoint; an original .pth file has none), wrapped for `evaluate` in a `PoseEstimator`."""
    from vitpose.device import resolve_device
    from vitpose.inference.estimator import PoseEstimator
    from vitpose.models.pose import VitPoseForPoseEstimation
    from vitpose.processor import VitPoseImageProcessor

    model = args.model or DEFAULT_MODEL
    device = resolve_device(args.device)
    network = VitPoseForPoseEstimation.from_pretrained(model, device=device, dtype=network_dtype(args))
    processor = None if Path(model).is_file() else VitPoseImageProcessor.from_pretrained(model)
    return PoseEstimator(network, processor, detector="full-image")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """What decides the predictions and metrics (not the device or the batch size, but the precision the network
    runs in: float16 and bfloat16 move keypoints): a resumed run must have the same."""
    from vitpose.device import dtype_name

    dataset = args.dataset
    if dataset is not None and not isinstance(dataset, str | int):
        dataset = getattr(dataset, "name", str(dataset))
    model = args.model or DEFAULT_MODEL
    files = ("annotations", "images", "detections", "headboxes")
    return {
        "model": os.path.realpath(model) if os.path.exists(model) else model,
        **{k: None if getattr(args, k) is None else os.path.realpath(getattr(args, k)) for k in files},
        "dataset": dataset,
        "flip_test": bool(args.flip_test),
        "dtype": dtype_name(network_dtype(args)),
        "det_thr": args.det_thr,
        "nms_thr": None if args.no_nms else args.nms_thr,
    }


class _Journal(Journal):
    """The partial results beside --out (`outputs.Journal`). A fresh run creates it at its first image; --resume reads
    it (checked against this run's settings) and starts it again with the images done."""

    def __init__(self, out: str, settings: dict[str, Any], resume: bool) -> None:
        path = Path(out + PARTIAL_SUFFIX)
        self.done: dict[int, dict[str, Any]] = {}
        if not path.is_file():
            if resume:
                raise VitPoseError(
                    f"--resume: nothing to resume: no {path} (the partial results of an interrupted run with "
                    f"--out {out}); run without --resume to evaluate"
                )
            super().__init__(path, "eval", settings, lazy=True)
            return
        then, entries = read_journal(path, "eval")
        if not resume:
            raise VitPoseError(
                f"--out {out}: an interrupted run left {path} ({len(entries)} images done): add --resume to "
                "continue it, or remove that file (or choose another --out) to start again"
            )
        names = settings_changes(then, settings)
        if names:
            raise VitPoseError(
                f"--resume: the interrupted run of {out} had other settings: {names}; resume with the same options, "
                "or remove its partial results to start again"
            )
        for entry in entries:
            if not isinstance(entry.get("position"), int):
                raise VitPoseError(f"{path}: a line without its image position; remove the file to start again")
            self.done[entry["position"]] = entry
        super().__init__(path, "eval", settings, [self.done[p] for p in sorted(self.done)])


def _write_predictions(path: str, predictions: list) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(predictions))


def _check_out(args: argparse.Namespace) -> None:
    """Refuse an --out that is one of the inputs: the annotations, detections, head boxes, the checkpoint, an
    image of --images."""
    if not args.out:
        return
    from vitpose.media import is_image_file

    inputs = InputFiles()
    for option in ("annotations", "detections", "headboxes"):
        if getattr(args, option):
            inputs.add(f"the --{option} file", getattr(args, option))
    add_model_files(inputs, args.model)
    images = files_of(args.images)
    for image in images:
        inputs.add("an image of --images", image)
    if args.images and is_image_file(args.out):
        inputs.add_folder("the --images folder", args.images)  # an image file name anywhere in the images' tree
    inputs.check_outputs(
        [args.out, args.out + PARTIAL_SUFFIX],
        option="--out",
        hint="choose another file name for the predictions (JSON)",
    )


def _score_file(args: argparse.Namespace) -> int:
    """`--predictions`: score a COCO results file as it is."""
    if args.model is not None or args.images or args.detections:
        raise VitPoseError("--predictions scores a results file as it is: drop --model, --images and --detections")
    from vitpose.datasets import get_dataset_info
    from vitpose.evaluation.metrics import evaluate_predictions, format_metrics_table
    from vitpose.evaluation.pipeline import infer_dataset, read_json

    annotations = read_json(args.annotations, "annotations")
    dataset = get_dataset_info(args.dataset) if args.dataset is not None else infer_dataset(annotations)
    if dataset.name == "mpii":
        raise VitPoseError("--predictions scores COCO-format results; MPII is scored from a model run")
    metrics = evaluate_predictions(args.annotations, args.predictions, dataset)  # errors name the files
    print(json.dumps(metrics) if args.json else format_metrics_table(metrics, dataset.display_name or dataset.name))
    return 0
