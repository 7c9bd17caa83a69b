"""The evaluation pipeline of the original ViTPose: boxes -> top-down inference -> rescoring -> OKS-NMS -> metrics.

report = evaluate("usyd-community/vitpose-base-simple", "person_keypoints_val2017.json", "val2017/",
                  detections="COCO_val2017_detections_AP_H_56_person.json", flip_test=True)
report.metrics["AP"]

COCO-format data sets (COCO, AI Challenger, AP-10K, APT-36K, COCO-WholeBody) are scored with pycocotools' keypoint AP
and the data set's OKS sigmas; MPII with PCKh@0.5. The steps and their constants are those of the original test
pipeline (mmpose 0.x top-down data sets, as ViTPose uses them):

- boxes from a detection file (COCO results format; person category for human data sets; every box with a score
  >= `det_thr`, 0.0 in the original, is kept), or from the ground truth (annotations with at least one labelled
  keypoint, box clipped to the image, score 1); MPII from its annotated centre and scale;
- instance score = box score x mean of the keypoint scores above 0.2;
- OKS-NMS at 0.9 per image with the data set's sigmas and the padded box area (COCO-format data sets);
- pycocotools `COCOeval(iouType="keypoints")` (per part for WholeBody), or PCKh for MPII.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitpose.datasets import DatasetInfo
from vitpose.datasets.coco import clip_gt_box, load_coco_keypoints, parse_detection, read_detections
from vitpose.datasets.coco import read_json as _read_json
from vitpose.datasets.custom import dataset_info_from_dict, infer_dataset_info, is_registered, resolve_dataset_info
from vitpose.detectors.boxes import skip_degenerate_boxes
from vitpose.errors import AnnotationError
from vitpose.inference.estimator import PoseEstimator
from vitpose.media import FailedImage, ImageReadWarning, find_image_files
from vitpose.ops.oks import pose_nms
from vitpose.outputs import progress_bar, protected

METRIC_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR")
Runner = Callable[..., Iterator[Any]]
"""`runner(estimator, images, **given)`: the results of `estimator.iter_predict(images, errors="report", **given)`."""


def run_here(estimator: PoseEstimator, images: list[Any], **given: Any) -> Iterator[Any]:
    """The default `Runner` of `evaluate`: the estimator in this process."""
    return estimator.iter_predict(images, errors="report", **given)


@dataclass
class EvalReport:
    """What `evaluate` measured.

    Attributes:
        metrics: metric name -> value. COCO-format data sets: `AP`, `AP50`, `AP75`, `APm`, `APl`, `AR`, `AR50`,
            `AR75`, `ARm`, `ARl` as fractions (0..1), as pycocotools gives them; WholeBody adds `body_AP`,
            `foot_AP`, `face_AP`, `lefthand_AP`, `righthand_AP`, `hand_AP` (and `*_AR`); MPII gives `PCKh`,
            `PCKh@0.1` and per-joint-group values as percentages (0..100), as the original reports them.
        predictions: the results that were scored: COCO keypoint results (`image_id`, `category_id`, `keypoints`
            flat x, y, score, `score`) for COCO-format data sets, without `bbox` as the original writes them (with
            a `bbox`, pycocotools would take the area of a prediction from its box rather than from its keypoints,
            which changes the APm / APl split); for MPII one entry per annotated person
            (`image`, `joints` (16, 2), `scores` (16,), `center`, `scale`).
        dataset: the data set the annotations were scored as.
        num_images: images evaluated.
        num_instances: person crops run through the network (before OKS-NMS).
        notes: anything the caller should know (dropped boxes, a fallback head size, images left out, ...).
        unreadable: the images that could not be read: each is reported (an `ImageReadWarning` and a note) and left
            out of the score with its ground truth, so that the score is that of the images read.
    """

    metrics: dict[str, float]
    predictions: list[dict[str, Any]]
    dataset: DatasetInfo
    num_images: int
    num_instances: int
    notes: list[str] = field(default_factory=list)
    unreadable: list[FailedImage] = field(default_factory=list)

    def table(self) -> str:
        """The metric table as the CLI prints it."""
        if self.dataset.name == "mpii":
            from vitpose.evaluation.mpii import format_pckh_table

            return format_pckh_table(self.metrics)
        from vitpose.evaluation.metrics import format_metrics_table

        return format_metrics_table(self.metrics, self.dataset.display_name or self.dataset.name)


class EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM under the command line) during `evaluate`: what was finished, without metrics (they need
    every image).

    Attributes:
        predictions: the results of the images finished, as `EvalReport.predictions`.
        done: images finished. total: images to evaluate.
    """

    def __init__(self, predictions: list[dict[str, Any]], done: int, total: int) -> None:
        super().__init__(f"evaluation interrupted after {done} of {total} images")
        self.predictions = predictions
        self.done = done
        self.total = total


# The name earlier releases raised; every input problem of the evaluation is an AnnotationError (a VitPoseError).
EvaluationError = AnnotationError


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """A JSON file, or an `EvaluationError` naming the file and what it should have been
    (`vitpose.datasets.coco.read_json`)."""
    return _read_json(path, what)


def infer_dataset(annotations: Any, source: str = "annotations") -> DatasetInfo:
    """The data set an annotation file is in (`vitpose.datasets.custom.infer_dataset_info`, whose docstring gives
    the rules): MPII (a JSON list), WholeBody (`foot_kpts`), a known data set by its keypoint names, 17 COCO or
    AP-10K, 14 AI Challenger, else a custom skeleton from the categories."""
    return infer_dataset_info(annotations, source)


def _model_dataset(model: Any) -> DatasetInfo | None:
    """The custom data set a checkpoint's main head was trained on (`config.dataset_info`), or None."""
    described = getattr(model.config, "dataset_info", None)
    if not described:
        return None
    return dataset_info_from_dict(described, "the model's config.json (dataset_info)")


def _dataset(dataset: Any, data: Any, model: Callable[[], Any], source: str | None) -> DatasetInfo:
    """The data set to score as: the one asked for, else inferred from the annotations; a custom skeleton that the
    model (`model()` loads it) was trained on, with the same keypoint count, is scored with the model's description
    (its names, flip pairs and OKS sigmas) instead of the guessed one."""
    if dataset is not None:
        return resolve_dataset_info(dataset)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        inferred = infer_dataset(data, source or "annotations")
    if not is_registered(inferred):
        described = _model_dataset(model())
        if described is not None and inferred.num_keypoints == described.num_keypoints:
            return described
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=3)
    return inferred


def _load_model(model: Any, flip_test: bool | None, device: str | torch.device | None) -> tuple[Any, Any, bool]:
    """(model, processor or None, flip test) of what `evaluate` was given."""
    from vitpose.models.pose import VitPoseForPoseEstimation

    if isinstance(model, PoseEstimator):
        return model.model, model.processor, model.flip_test if flip_test is None else flip_test
    if isinstance(model, (str, os.PathLike)):
        base_model = VitPoseForPoseEstimation.from_pretrained(model, device=device or "auto")
        from vitpose.processor import VitPoseImageProcessor

        processor = VitPoseImageProcessor.from_pretrained(model) if not Path(model).is_file() else None
        return base_model, processor, bool(flip_test)
    if device is not None:
        model = model.to(device)
    return model, None, bool(flip_test)


def _estimator(loaded: tuple[Any, Any, bool], dataset: DatasetInfo, batch_size: int) -> PoseEstimator:
    """A PoseEstimator serving `dataset`, without NMS (evaluation applies its own)."""
    base_model, processor, flip = loaded
    selectable = base_model.config.selects_dataset
    in_registry = dataset.name in {"coco", "aic", "mpii", "ap10k", "apt36k", "wholebody"}
    model_k = base_model.config.num_keypoints_for(dataset.dataset_index if selectable and in_registry else 0)
    if model_k == dataset.num_keypoints:
        estimator = PoseEstimator(
            base_model,
            processor,
            detector="full-image",  # never used: evaluation always passes boxes or regions
            flip_test=flip,
            # ViTPose++: the data set's expert and head; one head: its keypoint layout (flip pairs, sigmas).
            dataset=(dataset.dataset_index if in_registry else None) if selectable else dataset,
            batch_size=batch_size,
            nms_thr=None,
        )
        model_k = estimator.dataset.num_keypoints
    if model_k != dataset.num_keypoints:
        raise EvaluationError(
            f"the model predicts {model_k} keypoints but the annotations are {dataset.display_name or dataset.name} "
            f"with {dataset.num_keypoints}: use a checkpoint trained on that data set, or a ViTPose++ checkpoint "
            "with its head (original .pth files keep every head)"
        )
    return estimator


def _gt_boxes(annotations: Mapping[str, Any], dataset: DatasetInfo) -> dict[Any, list[tuple[list[float], float, int]]]:
    """The original's ground-truth boxes: annotations with a labelled keypoint, clipped to the image (mmpose's
    clipping, `vitpose.datasets.coco.clip_gt_box`, as training), score 1."""
    sizes = {img["id"]: (img.get("width"), img.get("height")) for img in annotations["images"]}
    out: dict[Any, list[tuple[list[float], float, int]]] = {img["id"]: [] for img in annotations["images"]}
    for ann in annotations["annotations"]:
        # As the original (WholeBody included): skip instances whose (body) keypoints are all zero.
        values = list(ann.get("keypoints", []))
        if not values or max(values) <= 0 or ann.get("num_keypoints", 1) == 0:
            continue
        width, height = sizes.get(ann["image_id"], (None, None))
        box = clip_gt_box(ann["bbox"], width, height)
        if ann.get("area", 1) > 0 and box is not None:
            out[ann["image_id"]].append((box, 1.0, int(ann.get("category_id", 1))))
    return out


def _detection_boxes(
    detections: Any, annotations: Mapping[str, Any], dataset: DatasetInfo, det_thr: float, notes: list[str]
) -> dict[Any, list[tuple[list[float], float, int]]]:
    """Boxes of a COCO detections file, every one with score >= det_thr (person only for human data sets)."""
    entries, source = read_detections(detections)  # the one reader and parser of detections files
    out: dict[Any, list[tuple[list[float], float, int]]] = {img["id"]: [] for img in annotations["images"]}
    parsed = []
    for index, entry in enumerate(entries):
        det = parse_detection(entry, index, source)
        if det.image_id is None:
            raise EvaluationError(
                f"{source}: entry {index} needs an 'image_id' (the id of its image in the annotations)"
            )
        if det.image_id not in out:
            raise EvaluationError(
                f"{source}: entry {index}: image_id {det.image_id!r} is not an image of the annotations "
                "(were these detections made for this annotation file?)"
            )
        parsed.append(det)
    # The one policy of `vitpose predict --boxes` too: a box that cannot hold a person (not finite, width or
    # height <= 0) is skipped, and one warning names the entries.
    usable = skip_degenerate_boxes(
        [entries[det.index]["bbox"] for det in parsed], source, scores=[det.score for det in parsed], stacklevel=4
    )  # the boxes as written
    for det, use in zip(parsed, usable, strict=True):
        if not use or (not dataset.is_animal and det.category_id != 1) or det.score < det_thr:
            continue
        out[det.image_id].append((list(det.bbox), det.score, det.category_id))
    return out


def evaluate(
    model: Any,
    annotations: str | os.PathLike[str] | Mapping[str, Any] | list[Any],
    images: str | os.PathLike[str],
    *,
    detections: str | os.PathLike[str] | list[Any] | None = None,
    dataset: str | int | DatasetInfo | None = None,
    flip_test: bool | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
    det_thr: float = 0.0,
    nms_thr: float | None = 0.9,
    rescore_thr: float = 0.2,
    headboxes: str | os.PathLike[str] | None = None,
    finished: Mapping[int, Mapping[str, Any]] | None = None,
    on_image: Callable[[dict[str, Any]], None] | None = None,
    runner: Runner | None = None,
) -> EvalReport:
    """Run a model over an annotated data set and score it as the original ViTPose does.

    Args:
        model: a `VitPoseForPoseEstimation`, a `PoseEstimator` (its model and processor are used), or a checkpoint
            (hub id, directory, original `.pth`).
        annotations: a COCO-format keypoint file (or its loaded dict), or an MPII JSON list.
        images: the folder holding the annotated images (`file_name` relative to it, or its base name).
        detections: a COCO detections file (or list); None uses the ground-truth boxes.
        dataset: name, index or `DatasetInfo`; None infers it from the annotations.
        flip_test: the flip test (None: off, or the estimator's setting).
        batch_size: person crops per network batch.
        device: where to run a model given as a checkpoint ("auto" by default).
        progress: show a progress bar over the images.
        det_thr: detections below this score are dropped (0.0 in the original).
        nms_thr: OKS-NMS threshold (0.9); None turns it off.
        rescore_thr: keypoint scores above it enter the instance score (0.2).
        headboxes: MPII only: the official `mpii_gt_val.mat` for the head sizes (see `vitpose.evaluation.mpii`).
        finished: to continue an interrupted run: the records `on_image` received then (position -> record, as
            JSON gives them back); those images are not run again and the report is that of an uninterrupted run.
            A record whose image is not the one at its position now is an `EvaluationError`.
        on_image: called with the record of each image as it is finished (a JSON-serialisable dict: `position`
            in the evaluation's image order, the image (`image_id`, or `image` for MPII), `people`, and its
            results); a signal held by `vitpose.outputs.protected` waits until it returns. Unreadable images have
            no record (a resumed run tries them again).
        runner: where the network runs: called as `runner(estimator, images, boxes=..., box_scores=...)` (or
            `regions=...` for MPII), it yields what `estimator.iter_predict(images, errors="report", ...)` yields,
            in the same order (`run_here`, the default, is exactly that; `vitpose.integrations.ray.RayRunner` runs
            it on Ray actors). Everything else (boxes, rescoring, NMS, scoring) stays in this process.

    Returns:
        An `EvalReport`.
    """
    source = str(annotations) if isinstance(annotations, (str, os.PathLike)) else None
    data = read_json(annotations, "annotations") if isinstance(annotations, (str, os.PathLike)) else annotations
    cache: list[tuple[Any, Any, bool]] = []

    def loaded() -> tuple[Any, Any, bool]:
        if not cache:
            cache.append(_load_model(model, flip_test, device))
        return cache[0]

    info = _dataset(dataset, data, lambda: loaded()[0], source)
    if info.name == "mpii" or isinstance(data, list):
        if info.name != "mpii":
            raise EvaluationError(f"the annotations are an MPII list but dataset {info.name!r} was asked for")
        if detections is not None:
            raise EvaluationError("MPII is evaluated on its annotated centres and scales: --detections does not apply")
        if not isinstance(data, list):
            raise EvaluationError(
                f"{source or 'annotations'}: a COCO-format file with MPII's 16 joints; MPII is scored (PCKh) from "
                "its own format, the mmpose JSON list (mpii_val.json): pass that file"
            )
        return _evaluate_mpii(
            loaded(), data, source, images, info, batch_size, progress, headboxes, finished or {}, on_image, runner
        )
    from vitpose.evaluation.metrics import evaluate_predictions

    data = load_coco_keypoints(data, info, source=source)  # errors name the file
    estimator = _estimator(loaded(), info, batch_size)
    estimator.rescore_thr = rescore_thr
    notes: list[str] = []
    image_entries = [(img["id"], img["file_name"]) for img in data["images"]]
    paths = find_image_files(images, image_entries)
    if detections is None:
        per_image = _gt_boxes(data, info)
    else:
        per_image = _detection_boxes(detections, data, info, det_thr, notes)
    ids = [key for key, _ in image_entries]
    done = _resumed(finished or {}, ids, "image_id")  # position -> record
    todo = [position for position in range(len(ids)) if position not in done]
    sigmas = np.asarray(info.sigmas, np.float64)
    stream = (runner or run_here)(
        estimator,
        [paths[ids[p]] for p in todo],
        boxes=[np.array([b for b, _, _ in per_image[ids[p]]], np.float64).reshape(-1, 4) for p in todo],
        box_scores=[np.array([s for _, s, _ in per_image[ids[p]]], np.float64) for p in todo],
    )
    if progress:
        stream = progress_bar(stream, total=len(ids), initial=len(done), unit="img", desc="evaluating")
    failed: dict[Any, FailedImage] = {}

    def merged() -> list[dict[str, Any]]:  # in the order of the images, as an uninterrupted run
        return [p for position in sorted(done) for p in done[position]["predictions"]]

    try:
        for position, result in zip(todo, stream, strict=True):
            image_id = ids[position]
            if isinstance(result, FailedImage):
                failed[image_id] = _skip_unreadable(result)
                continue
            categories = np.array([c for _, _, c in per_image[image_id]], np.int64)
            keep = np.arange(len(result))
            if nms_thr is not None and len(result) > 1:
                keep = pose_nms(
                    result.keypoints,
                    result.scores,
                    sigmas,
                    nms_thr,
                    boxes=result.boxes.astype(np.float64),
                    input_size=estimator.processor.input_size,
                    padding=estimator.processor.padding_factor,
                )
            # COCO keypoint results as the original writes them: full precision, no bbox (see EvalReport).
            record = {
                "position": position,
                "image_id": image_id,
                "people": len(result),
                "predictions": result.select(keep).to_coco(
                    image_id=image_id, category_id=categories[keep], file_name=False, bbox=False, decimals=None
                ),
            }
            with protected():  # the image counts as done once it is recorded
                done[position] = record
                if on_image is not None:
                    on_image(record)
    except KeyboardInterrupt:
        raise EvaluationInterrupted(merged(), len(done), len(ids)) from None
    predictions = merged()
    count = sum(int(record["people"]) for record in done.values())
    if failed:
        data = _without_unreadable(data, failed, len(ids), notes)
    if not predictions and data["annotations"]:  # scored as AP 0: say why it is 0 (the warnings are muted below)
        notes.append(
            f"no pose was predicted (no box to run on any image): every AP and AR is 0 against the "
            f"{len(data['annotations'])} annotated instances; check the detections file and --det-thr"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = evaluate_predictions(data, predictions, info)
    return EvalReport(metrics, predictions, info, len(ids) - len(failed), count, notes, list(failed.values()))


def _resumed(finished: Mapping[int, Mapping[str, Any]], keys: list[Any], field: str) -> dict[int, dict[str, Any]]:
    """The records of the images an interrupted run finished (position -> record), each checked against the image
    at its position now."""
    done: dict[int, dict[str, Any]] = {}
    for position, record in finished.items():
        if not isinstance(position, int) or not 0 <= position < len(keys) or keys[position] != record.get(field):
            raise EvaluationError(
                f"the images differ from the interrupted run's (its image {record.get(field)!r} is not image "
                f"{position} of the annotations now): evaluate the same annotations, or start again"
            )
        done[position] = dict(record)
    return done


def _skip_unreadable(failure: FailedImage) -> FailedImage:
    warnings.warn(
        f"{failure.source}: {failure.reason}; it is left out of the score (its ground truth too)",
        ImageReadWarning,
        stacklevel=3,
    )
    return failure


def _unreadable_note(failed: dict[Any, FailedImage], total: int, notes: list[str]) -> None:
    """The note on the images left out; none read at all is an error (nothing to score)."""
    if len(failed) == total:
        raise AnnotationError(f"none of the {total} images could be read (see the warnings): nothing to score")
    names = [f.source for f in failed.values()]
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    notes.append(
        f"scored on {total - len(names)} of {total} images: {len(names)} could not be read and are left out with "
        f"their ground truth ({shown}); the score is not comparable with one over the whole set"
    )


def _without_unreadable(data: Mapping[str, Any], failed: dict[Any, FailedImage], total: int, notes: list[str]) -> Any:
    """The COCO ground truth without the images that could not be read (scored as the images read)."""
    _unreadable_note(failed, total, notes)
    return {
        **data,
        "images": [img for img in data["images"] if img["id"] not in failed],
        "annotations": [ann for ann in data["annotations"] if ann.get("image_id") not in failed],
    }


def _evaluate_mpii(
    loaded: tuple[Any, Any, bool],
    data: list[Any],
    source: str | None,
    images: str | os.PathLike[str],
    info: DatasetInfo,
    batch_size: int,
    progress: bool,
    headboxes: Any,
    finished: Mapping[int, Mapping[str, Any]],
    on_image: Callable[[dict[str, Any]], None] | None,
    runner: Runner | None,
) -> EvalReport:
    from vitpose.evaluation.mpii import load_mpii, pckh

    notes: list[str] = []
    if headboxes is None and source is not None and (Path(source).parent / "mpii_gt_val.mat").is_file():
        headboxes = Path(source).parent / "mpii_gt_val.mat"  # where the original looks for the head boxes
        notes.append(f"head boxes from {headboxes}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = load_mpii(source if source is not None else data, headboxes=headboxes)
    notes.extend(str(w.message) for w in caught)
    estimator = _estimator(loaded, info, batch_size)
    order: list[str] = []
    members: dict[str, list[int]] = {}
    for index, sample in enumerate(samples):
        if sample.image not in members:
            order.append(sample.image)
            members[sample.image] = []
        members[sample.image].append(index)
    paths = find_image_files(images, [(name, name) for name in order])
    regions = [
        (
            np.stack([samples[i].center for i in members[name]]),
            np.stack([samples[i].scale for i in members[name]]),
        )
        for name in order
    ]
    done = _resumed(finished, order, "image")  # position -> record
    todo = [position for position in range(len(order)) if position not in done]
    stream = (runner or run_here)(estimator, [paths[order[p]] for p in todo], regions=[regions[p] for p in todo])
    if progress:
        stream = progress_bar(stream, total=len(order), initial=len(done), unit="img", desc="evaluating")
    keypoints = np.zeros((len(samples), info.num_keypoints, 2), np.float64)
    scores = np.zeros((len(samples), info.num_keypoints), np.float64)
    for record in done.values():  # what the interrupted run finished, as it computed it
        for index, (joints, joint_scores) in zip(members[record["image"]], record["rows"], strict=True):
            keypoints[index] = np.asarray(joints, np.float64)
            scores[index] = np.asarray(joint_scores, np.float64)
    failed: dict[str, FailedImage] = {}
    try:
        for position, result in zip(todo, stream, strict=True):
            name = order[position]
            if isinstance(result, FailedImage):
                failed[name] = _skip_unreadable(result)
                continue
            rows = []
            for row, index in enumerate(members[name]):
                keypoints[index] = result.keypoints[row]
                scores[index] = result.keypoint_scores[row]
                rows.append([keypoints[index].tolist(), scores[index].tolist()])
            record = {"position": position, "image": name, "people": len(rows), "rows": rows}
            with protected():  # the image counts as done once it is recorded
                done[position] = record
                if on_image is not None:
                    on_image(record)
    except KeyboardInterrupt:
        finished_rows = [i for position in sorted(done) for i in members[order[position]]]
        raise EvaluationInterrupted(
            _mpii_predictions(samples, keypoints, scores, finished_rows), len(done), len(order)
        ) from None
    kept = [i for i, s in enumerate(samples) if s.image not in failed]
    if failed:
        _unreadable_note(failed, len(order), notes)
        metrics = pckh(keypoints[kept], [samples[i] for i in kept])  # scored as the images read
    else:
        metrics = pckh(keypoints, samples)
    predictions = _mpii_predictions(samples, keypoints, scores, kept)
    unreadable = list(failed.values())
    return EvalReport(metrics, predictions, info, len(order) - len(failed), len(kept), notes, unreadable)


def _mpii_predictions(samples: list[Any], keypoints: np.ndarray, scores: np.ndarray, rows: Any) -> list[dict[str, Any]]:
    """The MPII results of the samples `rows` (in that order)."""
    return [
        {
            "image": samples[i].image,
            "joints": keypoints[i].tolist(),
            "scores": scores[i].tolist(),
            "center": [float(v) for v in samples[i].center],
            "scale": [float(v) for v in samples[i].scale],
        }
        for i in rows
    ]
