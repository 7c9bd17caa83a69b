"""Keypoint average precision (COCO OKS AP/AR), scored by pycocotools, for every COCO-style data set.

This is the scoring layer of ``vitpose eval``: it reads a COCO-format keypoint annotation file and a list (or JSON
file) of COCO keypoint results, checks both with messages that say which file, which entry and which field is wrong
and what to do (the reading and the checks are those of `vitpose.datasets.coco`, the one COCO reader, re-exported
here: ``load_coco_keypoints``, ``validate_predictions``), and returns the ten numbers of ``COCOeval.summarize()``
for ``iouType='keypoints'`` with the data set's OKS sigmas. Nothing is rescored, filtered or suppressed here: for
COCO-style data sets the numbers are exactly those of ``COCOeval(gt, gt.loadRes(predictions), "keypoints")`` with
``params.kpt_oks_sigmas`` set.

Conventions (and where they come from)
--------------------------------------
* Missing ``iscrowd`` is filled with 0 and missing ``num_keypoints`` with the count of keypoints with ``v > 0``
  (pycocotools needs both and fills neither). Missing ``area`` is filled with ``0.53 * w * h`` of the ``bbox``:
  that is the fallback of xtcocotools (the COCO API fork used by the original ViTPose / mmpose 0.x) for files
  without ``area`` such as AI Challenger, which the original evaluates with ``use_area=False`` (OKS scale and the
  medium/large split both from ``0.53 * w * h``). With it, pycocotools reproduces the original AIC evaluation.
* A crowd annotation (``iscrowd`` 1) without ``keypoints`` gets all-zero keypoints (it is ignored by the evaluation
  anyway); any other annotation must have them.
* pycocotools picks the detection area (used only to drop *unmatched* detections outside the medium/large ranges,
  i.e. only APm/APl/ARm/ARl) from the *first* result: with a non-empty ``bbox`` every detection's area is its box
  ``w * h``; otherwise it is the extent of its keypoints. ``PoseResult.to_coco`` writes ``bbox``; the original
  mmpose results carry none. ``AP``/``AR`` do not depend on this.
* Empty predictions: pycocotools' ``loadRes`` fails on an empty list, so an empty result set is built directly;
  COCOeval then gives 0.0 for every statistic whose area range has unignored ground truth and -1.0 where it has
  none (pycocotools' marker for "no ground truth", e.g. APm on a file without medium-sized people).

COCO-WholeBody
--------------
The original ViTPose++ evaluates COCO-WholeBody with xtcocotools ``COCOeval`` and the iou types
``keypoints_body``, ``keypoints_foot``, ``keypoints_face``, ``keypoints_lefthand``, ``keypoints_righthand`` and
``keypoints_wholebody`` (the part's slice of the 133 sigmas, ``use_area=True``). pycocotools has no such iou
types; :func:`wholebody_metrics` reproduces them with plain ``"keypoints"`` evaluations on per-part ground truth
(:func:`wholebody_part_gt`) and per-part results, following xtcocotools' ``cocoeval.py`` (jin-s13/xtcocoapi):

* ground truth: the part's keypoints (``keypoints`` for the body, ``foot_kpts``, ``face_kpts``, ``lefthand_kpts``,
  ``righthand_kpts``, or all five concatenated in that order for the whole body); an instance is ignored when it
  is a crowd or has no keypoint with ``v > 0`` *in that part* (xtcocotools recounts, it does not read
  ``num_keypoints``); the OKS scale and the area ranges use the instance's ``area`` (the whole person's, the same
  for every part);
* results: the part's slice; a result with no keypoint of the part scored ``> 0`` is dropped (xtcocotools skips
  all-zero detections); the score is ``<part>_score`` (``wholebody_score`` for the whole body) when the result has
  one, else ``score`` (the body always uses ``score``); the detection area is the ``bbox`` area when the first
  result has a non-empty ``bbox``, else the extent of the 17 body keypoints (xtcocotools' ``loadRes`` measures the
  ``keypoints`` field, which holds the body in the mmpose layout), the same for every part.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vitpose.datasets.coco import (
    DatasetLike,
    PathLike,
    _annotations_and_info,
    _has_bbox,
    _multipart,
    load_coco_keypoints,
    validate_predictions,
)
from vitpose.datasets.coco import check_keypoint_results as _validate_predictions
from vitpose.datasets.coco import read_keypoint_results as _read_predictions
from vitpose.datasets.metadata import DatasetInfo, get_dataset_info
from vitpose.errors import AnnotationError, MissingDependencyError, VitPoseError

__all__ = [
    "METRIC_NAMES",
    "WHOLEBODY_PARTS",
    "AnnotationError",
    "EmptyPredictionsWarning",
    "coco_keypoint_metrics",
    "evaluate_predictions",
    "format_metrics_table",
    "load_coco_keypoints",
    "validate_predictions",
    "wholebody_metrics",
    "wholebody_part_gt",
]

#: Names of the ten statistics of ``COCOeval.summarize()`` for keypoints, in its order.
METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

#: The parts scored by :func:`wholebody_metrics`, plus ``"wholebody"`` (all 133 keypoints).
WHOLEBODY_PARTS: tuple[str, ...] = ("body", "foot", "face", "lefthand", "righthand", "wholebody")


# ---------------------------------------------------------------------------------------------------------------------
# Reading and checking the files: vitpose.datasets.coco (re-exported here).


def _quiet() -> contextlib.AbstractContextManager:
    return contextlib.redirect_stdout(io.StringIO())


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            'keypoint AP needs pycocotools: pip install "vitpose[eval]" (or pip install pycocotools)'
        ) from err
    return COCO, COCOeval


# ---------------------------------------------------------------------------------------------------------------------
# Scoring.


def _coco_from_dict(dataset: dict[str, Any]):
    COCO, _ = _pycocotools()
    coco = COCO()
    coco.dataset = dataset
    with _quiet():
        coco.createIndex()
    return coco


def _empty_results(gt_coco) -> Any:
    """A results object with no detections (pycocotools' loadRes fails on an empty list)."""
    return _coco_from_dict(
        {
            "images": list(gt_coco.dataset["images"]),
            "categories": copy.deepcopy(gt_coco.dataset["categories"]),
            "annotations": [],
        }
    )


def _run_cocoeval(gt_coco, dt_coco, sigmas: Sequence[float]) -> dict[str, float]:
    _, COCOeval = _pycocotools()
    with _quiet():
        evaluator = COCOeval(gt_coco, dt_coco, "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [float(s) for s in evaluator.stats]
    if len(stats) != len(METRIC_NAMES):  # pragma: no cover - guards against a changed pycocotools
        raise RuntimeError(f"COCOeval.summarize gave {len(stats)} keypoint statistics, expected {len(METRIC_NAMES)}")
    return dict(zip(METRIC_NAMES, stats, strict=True))


def coco_keypoint_metrics(
    annotations: PathLike | Mapping[str, Any],
    predictions: list[dict[str, Any]] | PathLike,
    dataset: DatasetLike = "coco",
) -> dict[str, float]:
    """COCO keypoint AP/AR of results against annotations, computed by pycocotools with the data set's sigmas.

    Exactly ``COCOeval(gt, gt.loadRes(predictions), "keypoints")`` with ``params.kpt_oks_sigmas`` set to the
    data set's K sigmas (pycocotools' defaults are COCO's), after the checks of :func:`load_coco_keypoints` and
    :func:`validate_predictions`; nothing is rescored or suppressed. pycocotools' printing is silenced.

    Args:
        annotations: COCO-format keypoint annotation file path or loaded dict (K keypoints per instance).
        predictions: List of COCO keypoint results (``image_id``, ``category_id``, ``keypoints`` of 3K numbers,
            ``score``), or the path of a JSON file holding it. May be empty.
        dataset: Data set name, index or :class:`DatasetInfo` (not COCO-WholeBody: see :func:`wholebody_metrics`).

    Returns:
        ``{"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"}`` as floats in [0, 1], the ten
        statistics of ``COCOeval.summarize()`` in that order; -1.0 marks a statistic without ground truth (e.g. APm
        when no unignored instance is medium-sized). With no predictions every other statistic is 0.0.

    Raises:
        AnnotationError: For unusable annotation or prediction files (see the checks).
        ValueError: For COCO-WholeBody, which has its own part-wise evaluation.
    """
    gt, info = _annotations_and_info(annotations, dataset)
    if info.parts is not None:
        raise VitPoseError(
            f"dataset {info.name!r} is scored part by part: use wholebody_metrics() or evaluate_predictions()"
        )
    preds, source = _read_predictions(predictions)
    _validate_predictions(preds, gt, info, source)
    _warn_if_empty(preds, gt, source)
    gt_coco = _coco_from_dict(gt)
    if preds:
        with _quiet():
            dt_coco = gt_coco.loadRes(copy.deepcopy(preds))
    else:
        dt_coco = _empty_results(gt_coco)
    return _run_cocoeval(gt_coco, dt_coco, info.sigmas)


def _part_range(info: DatasetInfo, part: str) -> tuple[int, int]:
    if part == "wholebody":
        return 0, info.num_keypoints
    if info.parts is None or part not in info.parts:
        raise VitPoseError(f"unknown part {part!r}; valid parts: {', '.join(WHOLEBODY_PARTS)}")
    return info.parts[part]


def _flat_keypoints(entry: Mapping[str, Any], parts: list[tuple[str, str, int, int]], k: int) -> list[Any]:
    """All K keypoints of a checked multi-part annotation or result, flat (3K), in index order."""
    values = entry["keypoints"]
    if len(values) == 3 * k:
        return list(values)
    flat: list[Any] = []
    for _, field, _, _ in parts:
        flat.extend(entry[field])
    return flat


def _part_gt(gt: Mapping[str, Any], info: DatasetInfo, part: str) -> dict[str, Any]:
    start, stop = _part_range(info, part)
    parts = _multipart(info)
    annotations = []
    for ann in gt["annotations"]:
        keypoints = _flat_keypoints(ann, parts, info.num_keypoints)[3 * start : 3 * stop]
        annotations.append(
            {
                "id": ann["id"],
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": list(ann["bbox"]),
                "area": ann["area"],
                "iscrowd": ann["iscrowd"],
                "keypoints": keypoints,
                "num_keypoints": int(np.count_nonzero(np.asarray(keypoints, dtype=np.float64)[2::3] > 0)),
            }
        )
    return {
        "images": copy.deepcopy(gt["images"]),
        "categories": copy.deepcopy(gt["categories"]),
        "annotations": annotations,
    }


def wholebody_part_gt(annotations: PathLike | Mapping[str, Any], part: str) -> dict[str, Any]:
    """COCO-WholeBody ground truth reduced to one part, as pycocotools' ``"keypoints"`` evaluation reads it.

    Args:
        annotations: COCO-WholeBody annotation file path or loaded dict.
        part: ``"body"`` (17 keypoints), ``"foot"`` (6), ``"face"`` (68), ``"lefthand"`` (21), ``"righthand"``
            (21) or ``"wholebody"`` (all 133, in body, foot, face, left hand, right hand order).

    Returns:
        A COCO annotation dict (``images``, ``categories``, ``annotations``) whose annotations keep ``id``,
        ``image_id``, ``category_id``, ``bbox``, ``area`` (the whole person's) and ``iscrowd``, with ``keypoints``
        set to the part's keypoints (3 x part size numbers) and ``num_keypoints`` to the part's count of ``v > 0``,
        so that pycocotools ignores instances without a labelled keypoint in the part, as xtcocotools does.

    Raises:
        AnnotationError: For an unusable annotation file.
        ValueError: For an unknown part.
    """
    info = get_dataset_info("wholebody")
    _part_range(info, part)
    gt = load_coco_keypoints(annotations, info)
    return _part_gt(gt, info, part)


def _part_results(preds: list[dict[str, Any]], info: DatasetInfo, part: str, gt_coco: Any) -> Any:
    """Results object of one part, following xtcocotools (see the module notes)."""
    start, stop = _part_range(info, part)
    parts = _multipart(info)
    body_start, body_stop = parts[0][2], parts[0][3]
    score_key = None if part == "body" else f"{part}_score"
    use_bbox = bool(preds) and _has_bbox(preds[0])
    annotations = []
    for i, pred in enumerate(preds):
        flat = _flat_keypoints(pred, parts, info.num_keypoints)
        keypoints = [float(v) for v in flat[3 * start : 3 * stop]]
        if not any(s > 0 for s in keypoints[2::3]):
            continue  # xtcocotools drops results without a keypoint of the part scored > 0
        if use_bbox:
            box = [float(v) for v in pred["bbox"]]
            area = box[2] * box[3]
        else:
            body = np.asarray(flat[3 * body_start : 3 * body_stop], dtype=np.float64).reshape(-1, 3)
            x0, y0 = body[:, 0].min(), body[:, 1].min()
            x1, y1 = body[:, 0].max(), body[:, 1].max()
            box = [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
            area = float((x1 - x0) * (y1 - y0))
        score = pred.get(score_key, pred["score"]) if score_key else pred["score"]
        annotations.append(
            {
                "id": i + 1,
                "image_id": pred["image_id"],
                "category_id": pred["category_id"],
                "keypoints": keypoints,
                "score": float(score),
                "area": area,
                "bbox": box,
                "iscrowd": 0,
            }
        )
    return _coco_from_dict(
        {
            "images": list(gt_coco.dataset["images"]),
            "categories": copy.deepcopy(gt_coco.dataset["categories"]),
            "annotations": annotations,
        }
    )


def wholebody_metrics(
    annotations: PathLike | Mapping[str, Any], predictions: list[dict[str, Any]] | PathLike
) -> dict[str, float]:
    """COCO-WholeBody keypoint AP/AR per part and for the whole body, as the original ViTPose++ (xtcocotools).

    Six pycocotools ``"keypoints"`` evaluations (body, foot, face, left hand, right hand, whole body) on part
    ground truth from :func:`wholebody_part_gt` and part results, each with its slice of the 133 sigmas, emulating
    xtcocotools' ``keypoints_<part>`` iou types with ``use_area=True`` (see the module notes for the rules).

    Args:
        annotations: COCO-WholeBody annotation file path or loaded dict.
        predictions: List of results (``image_id``, ``category_id``, ``score``, and ``keypoints`` with 133 x 3
            numbers or the mmpose layout: 17 x 3 ``keypoints`` plus ``foot_kpts``, ``face_kpts``,
            ``lefthand_kpts``, ``righthand_kpts``; optional per-part ``<part>_score``/``wholebody_score``), or the
            path of a JSON file holding it. May be empty.

    Returns:
        ``body_AP, body_AR, foot_AP, foot_AR, face_AP, face_AR, lefthand_AP, lefthand_AR, righthand_AP,
        righthand_AR`` (each part's stats[0] and stats[5]); ``hand_AP``, ``hand_AR``: the mean of the left and
        right hand values (the one available if the other is -1, i.e. has no ground truth); and ``AP, AP50, AP75,
        APm, APl, AR, AR50, AR75, ARm, ARl`` of the whole body (133 keypoints). Floats in [0, 1], -1.0 where a
        statistic has no ground truth.

    Raises:
        AnnotationError: For unusable annotation or prediction files.
    """
    info = get_dataset_info("wholebody")
    gt = load_coco_keypoints(annotations, info)
    preds, source = _read_predictions(predictions)
    _validate_predictions(preds, gt, info, source)
    _warn_if_empty(preds, gt, source)
    out: dict[str, float] = {}
    whole: dict[str, float] = {}
    for part in WHOLEBODY_PARTS:
        start, stop = _part_range(info, part)
        gt_coco = _coco_from_dict(_part_gt(gt, info, part))
        dt_coco = _part_results(preds, info, part, gt_coco)
        stats = _run_cocoeval(gt_coco, dt_coco, info.sigmas[start:stop])
        if part == "wholebody":
            whole = stats
        else:
            out[f"{part}_AP"] = stats["AP"]
            out[f"{part}_AR"] = stats["AR"]
    for stat in ("AP", "AR"):
        values = [out[f"{side}_{stat}"] for side in ("lefthand", "righthand") if out[f"{side}_{stat}"] != -1.0]
        out[f"hand_{stat}"] = float(np.mean(values)) if values else -1.0
    out.update(whole)
    return out


class EmptyPredictionsWarning(UserWarning):
    """Keypoint results with no prediction at all, scored against annotations with people in them (AP 0)."""


def empty_predictions_message(source: str, num_annotations: int) -> str:
    """What to say when `source` holds no prediction for annotations with `num_annotations` instances."""
    return (
        f"{source}: no predictions to score (an empty list): every AP and AR is 0 against the {num_annotations} "
        "annotated instances. "
        "Check that it is the results file of these images (vitpose eval --out, or vitpose predict's "
        "predictions.json with --annotations), and that the detector or --det-thr left any box"
    )


def _warn_if_empty(preds: list[Any], gt: Mapping[str, Any], source: str) -> None:
    if not preds and gt.get("annotations"):
        warnings.warn(empty_predictions_message(source, len(gt["annotations"])), EmptyPredictionsWarning, stacklevel=3)


def evaluate_predictions(
    annotations: PathLike | Mapping[str, Any],
    predictions: list[dict[str, Any]] | PathLike,
    dataset: DatasetLike = "coco",
) -> dict[str, float]:
    """Score keypoint results against annotations: what ``vitpose eval --annotations A --predictions P`` runs.

    Dispatches to :func:`wholebody_metrics` for COCO-WholeBody and to :func:`coco_keypoint_metrics` otherwise. No
    rescoring, no NMS: the results are scored as they are.

    Args:
        annotations: COCO-format keypoint annotation file path or loaded dict.
        predictions: List of COCO keypoint results or the path of a JSON results file.
        dataset: Data set name, index or :class:`DatasetInfo`.

    Returns:
        The metrics dict of the function dispatched to (floats in [0, 1], -1.0 for "no ground truth").

    Raises:
        AnnotationError: For unusable annotation or prediction files (the message names the file).
    """
    info = get_dataset_info(dataset)
    if info.parts is not None:
        return wholebody_metrics(annotations, predictions)
    return coco_keypoint_metrics(annotations, predictions, info)


def _percent(value: float) -> str:
    return "   n/a" if value is None or value < 0 else f"{100.0 * value:6.1f}"


def format_metrics_table(metrics: Mapping[str, float], dataset_name: str | DatasetInfo = "coco") -> str:
    """A fixed-width text table of keypoint metrics, values as percentages with one decimal (e.g. ``AP  75.8``).

    Args:
        metrics: The dict of :func:`evaluate_predictions` (or any dict of float metrics in [0, 1]; -1 prints as
            ``n/a``, meaning no ground truth).
        dataset_name: Data set name or :class:`DatasetInfo` for the title (unknown names are printed as given).

    Returns:
        The table, lines joined with newlines, no trailing newline.
    """
    try:
        title = get_dataset_info(dataset_name).display_name
    except (ValueError, TypeError):
        title = str(dataset_name)
    lines = [f"{title} keypoint AP (OKS, pycocotools)"]
    shown: set[str] = set()
    part_names = [p for p in (*WHOLEBODY_PARTS[:-1], "hand") if f"{p}_AP" in metrics or f"{p}_AR" in metrics]
    if part_names:
        lines.append(f"  {'part':<10}{'AP':>6}{'AR':>8}")
        for part in part_names:
            ap, ar = metrics.get(f"{part}_AP", -1.0), metrics.get(f"{part}_AR", -1.0)
            lines.append(f"  {part:<10}{_percent(ap)}  {_percent(ar)}")
            shown.update((f"{part}_AP", f"{part}_AR"))
        lines.append("  whole body (133 keypoints):")
    ap_names = [n for n in METRIC_NAMES[:5] if n in metrics]
    ar_names = [n for n in METRIC_NAMES[5:] if n in metrics]
    for row in range(max(len(ap_names), len(ar_names))):
        cells = []
        for names in (ap_names, ar_names):
            if row < len(names):
                cells.append(f"{names[row]:<6}{_percent(metrics[names[row]])}")
                shown.add(names[row])
            else:
                cells.append(" " * 12)
        lines.append(("  " + "    ".join(cells)).rstrip())
    for name, value in metrics.items():
        if name not in shown:
            lines.append(f"  {name:<10}{_percent(value)}")
    return "\n".join(lines)
