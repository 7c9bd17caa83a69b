"""`vitpose` command line: thin argument parsing over the library; no logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from vitpose import __version__
from vitpose.errors import VitPoseError


def _convert(args: argparse.Namespace) -> int:
    from vitpose.models.pose import VitPoseForPoseEstimation
    from vitpose.processor import VitPoseImageProcessor

    model = VitPoseForPoseEstimation.from_pretrained(args.source)
    if args.fold is not None:
        model = model.fold_experts(args.fold)
    model.save_pretrained(args.out_dir, safe_serialization=not args.bin)
    VitPoseImageProcessor(
        size={"height": model.config.backbone_config.image_size[0], "width": model.config.backbone_config.image_size[1]}
    ).save_pretrained(args.out_dir)
    print(f"wrote {args.out_dir}: {_describe(model)}")
    return 0


def _describe(model) -> str:
    cfg = model.config
    bb = cfg.backbone_config
    parts = [
        f"ViT width {bb.hidden_size}, {bb.num_hidden_layers} blocks, {bb.num_attention_heads} heads",
        f"input {bb.image_size[0]}x{bb.image_size[1]}",
        f"{'simple' if cfg.use_simple_decoder else 'classic'} decoder",
        f"{cfg.num_labels} keypoints",
    ]
    if bb.is_moe:
        parts.append(f"{bb.num_experts} experts ({bb.part_features} part features)")
    if cfg.associate_num_labels:
        parts.append(f"extra heads {cfg.associate_num_labels} for dataset_index 1..{len(cfg.associate_num_labels)}")
    return ", ".join(parts)


def _info(args: argparse.Namespace) -> int:
    from vitpose.models.pose import VitPoseForPoseEstimation

    model = VitPoseForPoseEstimation.from_pretrained(args.source)
    if args.json:
        print(json.dumps(model.config.to_dict(), indent=2, sort_keys=True))
    else:
        params = sum(p.numel() for p in model.parameters())
        print(f"{args.source}: {_describe(model)}, {params / 1e6:.1f}M parameters")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from vitpose.inference.estimator import PoseEstimator
    from vitpose.media import FailedImage, expand_inputs, load_image

    paths, failures = expand_inputs(args.inputs)
    for failed in failures:
        print(f"vitpose predict: {failed.source}: {failed.reason}", file=sys.stderr)
    if not paths:
        print("vitpose predict: error: no image to process", file=sys.stderr)
        return 2
    detector = args.detector
    image_ids: dict[str, int] = {}
    if args.annotations:
        image_ids = _image_ids(args.annotations)
    if args.boxes:
        from vitpose.detectors import BoxesDetector

        detector = BoxesDetector.from_json(args.boxes, annotations=args.annotations, score_threshold=args.det_thr)
    estimator = PoseEstimator.from_pretrained(
        args.model,
        device=args.device,
        flip_test=args.flip_test,
        dataset=args.dataset,
        batch_size=args.batch_size,
        nms_thr=None if args.no_nms else args.nms_thr,
        detector=detector,
        detector_threshold=args.det_thr,
    )
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


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.predictions:
        if args.model_given or args.images or args.detections:
            raise VitPoseError("--predictions scores a results file as it is: drop --model, --images and --detections")
        from vitpose.datasets import get_dataset_info
        from vitpose.evaluation.metrics import evaluate_predictions, format_metrics_table
        from vitpose.evaluation.pipeline import infer_dataset, read_json

        annotations = read_json(args.annotations, "annotations")
        dataset = get_dataset_info(args.dataset) if args.dataset else infer_dataset(annotations)
        if dataset.name == "mpii":
            raise VitPoseError("--predictions scores COCO-format results; MPII is scored from a model run")
        metrics = evaluate_predictions(args.annotations, args.predictions, dataset)  # errors name the files
        print(json.dumps(metrics) if args.json else format_metrics_table(metrics, dataset.display_name or dataset.name))
        return 0
    if not args.images:
        raise VitPoseError(
            "--images DIR is needed to run a model (or pass --predictions P.json to score a results file)"
        )
    from vitpose.evaluation import evaluate

    report = evaluate(
        args.model,
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
    )
    for note in report.notes:
        print(f"vitpose eval: note: {note}", file=sys.stderr)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report.predictions))
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


def _image_ids(annotations: str) -> dict[str, int]:
    from pathlib import Path

    try:
        data = json.loads(Path(annotations).read_text())
        return {Path(image["file_name"]).name: int(image["id"]) for image in data["images"]}
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise VitPoseError(f"cannot read image ids from {annotations}: {err!r}") from None


def _unique_name(path, used: set[str]) -> str:
    suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp") else ".png"
    name, i = path.stem + suffix, 1
    while name in used:
        name, i = f"{path.stem}_{i}{suffix}", i + 1
    used.add(name)
    return name


def _write_image(path, rgb) -> None:
    import cv2

    if not cv2.imwrite(str(path), rgb[:, :, ::-1]):
        raise OSError(f"cannot write {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitpose", description="ViTPose and ViTPose++ pose estimation.")
    parser.add_argument("--version", action="version", version=f"vitpose {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    convert = sub.add_parser(
        "convert",
        help="convert a checkpoint (original ViTPose .pth, hub id or directory) to the transformers hub format",
        description="Write config.json, model.safetensors and preprocessor_config.json to OUT_DIR. The directory "
        "loads in vitpose and in transformers.VitPoseForPoseEstimation (ViTPose++ extra heads are kept under "
        "associate_heads.*, which transformers ignores).",
    )
    convert.add_argument("source", help="original ViTPose .pth file, hub id or hub-format directory")
    convert.add_argument("out_dir", help="output directory")
    convert.add_argument(
        "--fold",
        metavar="DATASET",
        help="ViTPose++ only: fold this data set's expert into fc2 and keep its head, giving a dense model "
        "(coco, aic, mpii, ap10k, apt36k, wholebody or 0-5)",
    )
    convert.add_argument("--bin", action="store_true", help="write pytorch_model.bin instead of model.safetensors")
    convert.set_defaults(func=_convert)

    predict = sub.add_parser(
        "predict",
        help="find the people in images, estimate their poses, write annotated images and predictions.json",
        description="Top-down pose estimation over files, folders and glob patterns. Writes one annotated image per "
        "input and predictions.json (COCO keypoint results, with file_name) to --out. An input that cannot be read "
        "is reported and skipped; the exit code is then 1.",
    )
    predict.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns")
    predict.add_argument("--model", default="usyd-community/vitpose-base-simple", help="hub id, directory or .pth")
    predict.add_argument(
        "--detector",
        default="auto",
        choices=["auto", "rtdetr", "hog", "full-image"],
        help="person detector: auto = RT-DETR where installed and available, else HOG (default auto)",
    )
    predict.add_argument("--boxes", help="person boxes instead of a detector: COCO detections JSON")
    predict.add_argument("--annotations", help="COCO annotations JSON mapping the --boxes image_id to file names")
    predict.add_argument("--det-thr", type=float, default=0.3, help="detector / --boxes score threshold (0.3)")
    predict.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    predict.add_argument("--batch-size", type=int, default=32, help="person crops per network batch (32)")
    predict.add_argument("--flip-test", action="store_true", help="average with the mirrored crop (slower, better)")
    predict.add_argument("--dataset", help="ViTPose++ data set: coco, aic, mpii, ap10k, apt36k, wholebody")
    predict.add_argument("--kpt-thr", type=float, default=0.3, help="keypoint score threshold for drawing (0.3)")
    predict.add_argument("--nms-thr", type=float, default=0.9, help="OKS-NMS threshold over detections (0.9)")
    predict.add_argument("--no-nms", action="store_true", help="keep every detected instance")
    predict.add_argument("--out", default="vitpose_out", help="output folder (default vitpose_out)")
    predict.set_defaults(func=_predict)

    ev = sub.add_parser(
        "eval",
        help="score a model on an annotated data set (COCO AP, WholeBody part AP, MPII PCKh), as the original",
        description="Run a model over the images of a COCO-format keypoint file (or an MPII list) with ground-truth "
        "or detected person boxes, rescore, apply OKS-NMS and score with pycocotools (data-set sigmas), as the "
        "original ViTPose evaluation. With --predictions, score an existing COCO results file instead (no model, "
        "no rescoring, no NMS).",
    )
    ev.add_argument(
        "--model", default=None, help="hub id, directory or .pth (default usyd-community/vitpose-base-simple)"
    )
    ev.add_argument("--annotations", required=True, help="COCO-format keypoint annotations, or MPII JSON list")
    ev.add_argument("--images", help="folder of the annotated images")
    ev.add_argument("--detections", help="COCO detections file for the person boxes (default: ground-truth boxes)")
    ev.add_argument("--predictions", help="score this COCO keypoint results file (no model)")
    ev.add_argument("--dataset", help="coco, aic, mpii, ap10k, apt36k, wholebody (default: inferred from the file)")
    ev.add_argument("--flip-test", action="store_true", help="average with the mirrored crop, as the papers report")
    ev.add_argument("--batch-size", type=int, default=32, help="person crops per network batch (32)")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    ev.add_argument(
        "--det-thr", type=float, default=0.0, help="drop detections below this score (0.0, as the original)"
    )
    ev.add_argument("--nms-thr", type=float, default=0.9, help="OKS-NMS threshold (0.9)")
    ev.add_argument("--no-nms", action="store_true", help="no OKS-NMS")
    ev.add_argument("--headboxes", help="MPII: the official mpii_gt_val.mat with the head boxes of PCKh")
    ev.add_argument("--out", help="write the scored predictions (JSON) here")
    ev.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    ev.set_defaults(func=_eval)

    from vitpose.cli.video import add_parser as add_video_parser

    add_video_parser(sub)
    from vitpose.cli.train import add_parser as add_train_parser

    add_train_parser(sub)
    from vitpose.cli.export import add_parser as add_export_parser

    add_export_parser(sub)

    info = sub.add_parser("info", help="describe a checkpoint: size, decoder, experts, heads")
    info.add_argument("source", help="original .pth file, hub id or hub-format directory")
    info.add_argument("--json", action="store_true", help="print the full config as JSON")
    info.set_defaults(func=_info)
    return parser


def _show_warnings_plainly(command: str) -> None:
    """Warnings as one line `vitpose CMD: warning: ...` (not Python's file:line form), above any progress bar."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from tqdm import tqdm

        tqdm.write(f"vitpose {command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    args = build_parser().parse_args(argv)
    if getattr(args, "fold", None) is not None and args.fold.isdigit():
        args.fold = int(args.fold)
    if args.command == "eval":
        args.model_given = args.model is not None
        args.model = args.model or "usyd-community/vitpose-base-simple"
    # Each run shows its warnings (once per place), even where this process warned before, as one plain line;
    # catch_warnings restores the caller's filters and showwarning afterwards.
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        _show_warnings_plainly(args.command)
        try:
            return args.func(args)
        # One line for what the user can fix (every such error derives from VitPoseError; files: OSError). Anything
        # else is a bug and keeps its traceback.
        except (VitPoseError, OSError) as err:
            print(f"vitpose {args.command}: error: {err}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
