"""Keypoint average precision (COCO OKS AP/AR), scored by pycocotools, for every COCO-style data set.

This is the scoring layer of ``vitpose eval``: it reads a COCO-format keypoint annotation file and a list (or JSON
file) of COCO keypoint results, checks both with messages that say which file, which entry and which field is wrong
and what to do, and returns the ten numbers of ``COCOeval.summarize()`` for ``iouType='keypoints'`` with the data
set's OKS sigmas. Nothing is rescored, filtered or suppressed here: for COCO-style data sets the numbers are exactly
those of ``COCOeval(gt, gt.loadRes(predictions), "keypoints")`` with ``params.kpt_oks_sigmas`` set.

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
import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.datasets.metadata import DATASETS, DatasetInfo, get_dataset_info
from vitpose.errors import AnnotationError, MissingDependencyError, VitPoseError

__all__ = [
    "METRIC_NAMES",
    "WHOLEBODY_PARTS",
    "AnnotationError",
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

# xtcocotools' area for annotations without one (CrowdPose, AI Challenger): 0.53 of the box.
_AREA_FROM_BOX = 0.53

DatasetLike = str | int | DatasetInfo
PathLike = str | os.PathLike


# ---------------------------------------------------------------------------------------------------------------------
# Small helpers.


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _first_bad_number(values: Sequence[Any]) -> int | None:
    """Index of the first value that is not a finite number, or None."""
    for i, v in enumerate(values):
        if not _is_finite_number(v):
            return i
    return None


def _all_finite_numbers(values: Any) -> bool:
    if not isinstance(values, (list, tuple)):
        return False
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        return False
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        return _first_bad_number(values) is None if arr.dtype.kind == "O" else False
    return bool(np.all(np.isfinite(arr)))


def _member(value: Any, known: set[Any]) -> bool:
    """`value in known`, False for unhashable values (a list where an id belongs) and for booleans."""
    if isinstance(value, bool):
        return False
    try:
        return value in known
    except TypeError:
        return False


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _multipart(info: DatasetInfo) -> list[tuple[str, str, int, int]]:
    """(part, annotation field, start, stop) of a multi-part layout, in index order; [] for a single part."""
    if info.parts is None:
        return []
    out = []
    for part, (start, stop) in sorted(info.parts.items(), key=lambda kv: kv[1][0]):
        field = "keypoints" if start == 0 else f"{part}_kpts"
        out.append((part, field, start, stop))
    return out


def _suggest(k: int, gt: Mapping[str, Any] | None) -> str:
    """What to pass for annotations with `k` keypoints per instance."""
    names = [name for name, info in DATASETS.items() if info.num_keypoints == k]
    if gt is not None and len(names) > 1:
        cats = gt.get("categories") if isinstance(gt.get("categories"), list) else []
        labels = {str(c.get("name", "")).lower() for c in cats if isinstance(c, dict)}
        labels |= {str(c.get("supercategory", "")).lower() for c in cats if isinstance(c, dict)}
        people = "person" in labels
        kept = [n for n in names if DATASETS[n].is_animal != people]
        names = kept or names
    if not names:
        known = ", ".join(f"{n} ({i.num_keypoints})" for n, i in DATASETS.items())
        return f"no known data set has {k} keypoints (known: {known}); check the file"
    if len(names) == 1:
        return f"pass --dataset {names[0]}"
    return f"pass --dataset {names[0]} (or {', '.join(names[1:])})"


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
# Reading and checking files.


def _read_json(path_or_obj: Any, what: str) -> tuple[Any, str]:
    """(loaded object, name used in messages) for a path or an already loaded object."""
    if isinstance(path_or_obj, (str, os.PathLike)):
        path = Path(path_or_obj)
        source = str(path)
        if not path.exists():
            raise AnnotationError(f"{what} file not found: {source}: check the path")
        if path.is_dir():
            raise AnnotationError(f"{what} file {source} is a directory: pass the JSON file inside it")
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except json.JSONDecodeError as err:
            raise AnnotationError(
                f"{source} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}): "
                f"pass a COCO-format {what} file"
            ) from None
        except UnicodeDecodeError:
            raise AnnotationError(f"{source} is not a UTF-8 text file: pass a COCO-format {what} JSON file") from None
        return obj, source
    return path_or_obj, "annotations" if what == "annotation" else what


def _check_keypoint_list(
    values: Any, expected: int, where: str, field: str, info: DatasetInfo, gt: Mapping[str, Any] | None, hint: str
) -> None:
    """Check one flat keypoint list (x, y, v/score triplets) of `expected` keypoints."""
    if not isinstance(values, (list, tuple)):
        raise AnnotationError(
            f"{where}: {field!r} must be a list of numbers (x, y, v per keypoint), got {_describe(values)}"
        )
    n = len(values)
    if n != 3 * expected:
        if n % 3 == 0 and n > 0 and field == "keypoints" and info.parts is None:
            raise AnnotationError(
                f"{where}: has {n // 3} keypoints per instance but dataset {info.name!r} has {expected}: "
                f"{_suggest(n // 3, gt)}"
            )
        raise AnnotationError(
            f"{where}: {field!r} has {n} values but dataset {info.name!r} needs {3 * expected} "
            f"({expected} keypoints x 3: x, y, v){hint}"
        )
    if not _all_finite_numbers(values):
        bad = _first_bad_number(values)
        raise AnnotationError(
            f"{where}: {field!r}[{bad}] is {_describe(values[bad])}, not a finite number: fix or drop the entry"
        )


def load_coco_keypoints(path_or_dict: PathLike | Mapping[str, Any], dataset: DatasetLike = "coco") -> dict[str, Any]:
    """Read and check a COCO-format keypoint annotation file against a data set's keypoint layout.

    Args:
        path_or_dict: Path to the JSON file, or its already loaded content (left untouched).
        dataset: Data set name, ViTPose++ index or :class:`DatasetInfo`; fixes K, the keypoints per instance.

    Returns:
        A deep copy of the annotations with the fields pycocotools needs filled in: ``iscrowd`` (0),
        ``num_keypoints`` (count of keypoints with ``v > 0``, of the body for COCO-WholeBody), ``area``
        (``0.53 * w * h``, xtcocotools' fallback, see the module notes), and all-zero keypoints for crowd
        annotations without any. Each annotation's ``keypoints`` holds ``3 * K`` numbers (x, y, v); for
        COCO-WholeBody, ``keypoints`` holds the 17 body keypoints (51 numbers) and ``foot_kpts`` (18),
        ``face_kpts`` (204), ``lefthand_kpts`` (63), ``righthand_kpts`` (63) the rest; a single ``keypoints``
        list of 133 x 3 numbers (and no part fields) is accepted too.

    Raises:
        AnnotationError: If the file is missing or not JSON, a top-level key (``images``, ``annotations``,
            ``categories``) is missing, an image lacks ``id``/``file_name``, an annotation lacks ``id``,
            ``image_id`` (of an existing image), ``category_id`` (of an existing category), a ``bbox`` of 4 finite
            numbers or keypoints of the data set's length, or ids repeat.
        ValueError: If `dataset` is unknown.
    """
    info = get_dataset_info(dataset)
    obj, source = _read_json(path_or_dict, "annotation")
    if isinstance(obj, list):
        raise AnnotationError(
            f"{source}: the top level is a list, not a COCO annotation object (is it a results file, or MPII-format "
            "annotations?): pass a COCO-format keypoint annotation file with 'images', 'annotations' and 'categories'"
        )
    if not isinstance(obj, Mapping):
        raise AnnotationError(
            f"{source}: expected a COCO annotation object (or a path to one) with 'images', 'annotations' and "
            f"'categories', got {type(obj).__name__}"
        )
    for key in ("images", "annotations", "categories"):
        if key not in obj:
            raise AnnotationError(
                f"{source}: missing top-level key {key!r}: a COCO keypoint annotation file has 'images', "
                "'annotations' and 'categories' (is this a results file or a detection file?)"
            )
        if not isinstance(obj[key], list):
            raise AnnotationError(f"{source}: {key!r} must be a list, got {type(obj[key]).__name__}")
    gt = copy.deepcopy(dict(obj))

    image_ids: set[Any] = set()
    id_kinds: set[str] = set()
    for i, image in enumerate(gt["images"]):
        where = f"{source}: image {i}"
        if not isinstance(image, dict):
            raise AnnotationError(f"{where}: must be an object with 'id' and 'file_name'")
        for field in ("id", "file_name"):
            if field not in image:
                raise AnnotationError(f"{where}: missing {field!r}: every image needs an 'id' and a 'file_name'")
        image_id = image["id"]
        if isinstance(image_id, bool) or not isinstance(image_id, (int, str)):
            raise AnnotationError(f"{where}: 'id' must be an integer (or a string), got {_describe(image_id)}")
        if image_id in image_ids:
            raise AnnotationError(f"{where}: image id {image_id!r} is used twice: give every image its own id")
        image_ids.add(image_id)
        id_kinds.add(type(image_id).__name__)
    if len(id_kinds) > 1:
        raise AnnotationError(f"{source}: image ids mix integers and strings: use one kind")

    category_ids: set[Any] = set()
    for i, category in enumerate(gt["categories"]):
        if not isinstance(category, dict) or "id" not in category:
            raise AnnotationError(f"{source}: category {i}: missing 'id': every category needs one")
        if isinstance(category["id"], bool) or not isinstance(category["id"], (int, str)):
            raise AnnotationError(f"{source}: category {i}: 'id' must be an integer, got {_describe(category['id'])}")
        category_ids.add(category["id"])

    parts = _multipart(info)
    ann_ids: set[Any] = set()
    for i, ann in enumerate(gt["annotations"]):
        where = f"{source}: annotation {i}"
        if not isinstance(ann, dict):
            raise AnnotationError(f"{where}: must be an object")
        if "id" not in ann:
            raise AnnotationError(f"{where}: missing 'id': give every annotation a unique integer id")
        ann_id = ann["id"]
        where = f"{source}: annotation {i} (id {ann_id!r})"
        if isinstance(ann_id, bool) or not isinstance(ann_id, numbers.Integral):
            raise AnnotationError(f"{where}: 'id' must be an integer (pycocotools stores matches by id)")
        if ann_id in ann_ids:
            raise AnnotationError(f"{where}: annotation id {ann_id} is used twice: give every annotation its own id")
        ann_ids.add(ann_id)
        if ann_id == 0:
            warnings.warn(
                f"{where}: annotation id 0: pycocotools treats a match to id 0 as no match, so that instance can "
                "never be found; renumber the annotations from 1",
                stacklevel=2,
            )
        if "image_id" not in ann:
            raise AnnotationError(f"{where}: missing 'image_id': say which image the instance belongs to")
        if not _member(ann["image_id"], image_ids):
            raise AnnotationError(
                f"{where}: 'image_id' {ann['image_id']!r} is not in 'images': add the image or drop the annotation"
            )
        if "category_id" not in ann:
            raise AnnotationError(
                f"{where}: missing 'category_id': add it (categories in the file: {sorted(category_ids, key=str)})"
            )
        if not _member(ann["category_id"], category_ids):
            raise AnnotationError(
                f"{where}: 'category_id' {ann['category_id']!r} is not in 'categories' "
                f"({sorted(category_ids, key=str)}): add the category or fix the id"
            )
        bbox = ann.get("bbox")
        if bbox is None:
            raise AnnotationError(f"{where}: missing 'bbox': give the instance's box as [x, y, w, h]")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not _all_finite_numbers(bbox):
            raise AnnotationError(f"{where}: 'bbox' must be 4 finite numbers [x, y, w, h], got {_describe(bbox)}")
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1):  # True/False compare equal to 1/0
            raise AnnotationError(f"{where}: 'iscrowd' must be 0 or 1, got {_describe(crowd)}")
        ann["iscrowd"] = int(crowd)

        if parts:
            _check_multipart_annotation(ann, where, info, parts, gt)
        else:
            if "keypoints" not in ann and ann["iscrowd"]:
                ann["keypoints"] = [0] * (3 * info.num_keypoints)
            if "keypoints" not in ann:
                raise AnnotationError(
                    f"{where}: missing 'keypoints': a keypoint annotation file lists {info.num_keypoints} x 3 numbers "
                    "(x, y, v) per instance (is this a detection-only file?)"
                )
            _check_keypoint_list(ann["keypoints"], info.num_keypoints, where, "keypoints", info, gt, "")

        if "num_keypoints" in ann:
            nk = ann["num_keypoints"]
            if isinstance(nk, bool) or not isinstance(nk, numbers.Integral) or nk < 0:
                raise AnnotationError(f"{where}: 'num_keypoints' must be a non-negative integer, got {_describe(nk)}")
        else:
            ann["num_keypoints"] = int(np.count_nonzero(np.asarray(ann["keypoints"], dtype=np.float64)[2::3] > 0))
        if "area" in ann:
            if not _is_finite_number(ann["area"]) or ann["area"] < 0:
                raise AnnotationError(f"{where}: 'area' must be a finite number >= 0, got {_describe(ann['area'])}")
        else:
            ann["area"] = float(bbox[2]) * float(bbox[3]) * _AREA_FROM_BOX
    _check_subject(gt, info, source)
    return gt


def _check_subject(gt: Mapping[str, Any], info: DatasetInfo, source: str) -> None:
    """Warn when the file's categories (people or animals) do not fit the data set (same K, other sigmas)."""
    names = [str(c.get("name", "")) for c in gt["categories"]]
    if not names:
        return
    people = any(n.lower() == "person" for n in names)
    if people == info.is_animal:
        others = [n for n, i in DATASETS.items() if i.num_keypoints == info.num_keypoints and i.is_animal != people]
        shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        hint = f"pass --dataset {others[0]}" if others else "check --dataset"
        warnings.warn(
            f"{source}: categories {shown} look like {'people' if people else 'animals'} but dataset {info.name!r} "
            f"is for {'animals' if info.is_animal else 'people'} (its OKS sigmas would be wrong): {hint}",
            stacklevel=3,
        )


def _check_multipart_annotation(
    ann: dict[str, Any], where: str, info: DatasetInfo, parts: list[tuple[str, str, int, int]], gt: Mapping[str, Any]
) -> None:
    """Check (and for crowds complete) a multi-part (COCO-WholeBody) annotation."""
    k = info.num_keypoints
    part_fields = [field for _, field, start, _ in parts if start > 0]
    values = ann.get("keypoints")
    if isinstance(values, (list, tuple)) and len(values) == 3 * k and not any(f in ann for f in part_fields):
        _check_keypoint_list(values, k, where, "keypoints", info, gt, "")
        # Normalise to the COCO-WholeBody layout, which the part slicing and pycocotools' body evaluation expect.
        flat = list(values)
        for _, field, start, stop in parts:
            ann[field] = flat[3 * start : 3 * stop]
        return
    layout = ", ".join(f"{field!r} ({stop - start} x 3)" for _, field, start, stop in parts)
    for _, field, start, stop in parts:
        if field not in ann:
            if ann.get("iscrowd"):
                ann[field] = [0] * (3 * (stop - start))
                continue
            extra = ""
            if start > 0 and "keypoints" in ann:
                extra = "; for a body-only COCO file pass --dataset coco"
            raise AnnotationError(
                f"{where}: missing {field!r}: dataset {info.name!r} needs annotations with {layout} "
                f"(or one 'keypoints' list of {k} x 3){extra}"
            )
        _check_keypoint_list(ann[field], stop - start, where, field, info, gt, f" (the {info.display_name} layout)")


def _read_predictions(predictions: Any) -> tuple[list[Any], str]:
    obj, source = _read_json(predictions, "predictions")
    if not isinstance(obj, list):
        hint = ""
        if isinstance(obj, Mapping) and "annotations" in obj:
            hint = " (this looks like an annotation file: pass it as --annotations)"
        raise AnnotationError(
            f"{source}: predictions must be a JSON list of COCO keypoint results "
            f"(image_id, category_id, keypoints, score), got {type(obj).__name__}{hint}"
        )
    return obj, source


def _validate_predictions(predictions: list[Any], gt: Mapping[str, Any], info: DatasetInfo, source: str) -> None:
    """Check COCO keypoint results against checked annotations (see :func:`validate_predictions`)."""
    image_ids = {image["id"] for image in gt["images"]}
    category_ids = {category["id"] for category in gt["categories"]}
    parts = _multipart(info)
    k = info.num_keypoints
    first_bbox = bool(predictions) and isinstance(predictions[0], dict) and _has_bbox(predictions[0])
    for i, pred in enumerate(predictions):
        where = f"{source}: prediction {i}"
        if not isinstance(pred, dict):
            raise AnnotationError(f"{where}: must be an object with image_id, category_id, keypoints and score")
        if "image_id" not in pred:
            raise AnnotationError(f"{where}: missing 'image_id': say which image the pose belongs to")
        image_id = pred["image_id"]
        where = f"{source}: prediction {i} (image_id {image_id!r})"
        if not _member(image_id, image_ids):
            some = ", ".join(repr(x) for x in sorted(image_ids, key=str)[:5])
            more = ", ..." if len(image_ids) > 5 else ""
            kind = ""
            if isinstance(image_id, str) and image_id.strip().isdigit() and int(image_id) in image_ids:
                kind = f" (it is a string; the annotations use the integer {int(image_id)})"
            raise AnnotationError(
                f"{where}: image_id {image_id!r} is not in the annotations' images ({some}{more}){kind}: the "
                "predictions must come from the images of this annotation file (check --annotations and the image ids)"
            )
        if "category_id" not in pred:
            raise AnnotationError(
                f"{where}: missing 'category_id': add it (the annotations' categories: "
                f"{sorted(category_ids, key=str)}; 1 is 'person' in COCO)"
            )
        if not _member(pred["category_id"], category_ids):
            raise AnnotationError(
                f"{where}: 'category_id' {pred['category_id']!r} is not in the annotations' categories "
                f"{sorted(category_ids, key=str)}: pycocotools would ignore this prediction; fix the id"
            )
        if "keypoints" not in pred:
            raise AnnotationError(f"{where}: missing 'keypoints': list x, y, score for each of the {k} keypoints")
        if parts:
            _check_multipart_prediction(pred, where, info, parts)
        else:
            _check_prediction_keypoints(pred["keypoints"], k, where, "keypoints", info)
        if "score" not in pred:
            raise AnnotationError(f"{where}: missing 'score': give each pose an instance score (e.g. the box score)")
        if not _is_finite_number(pred["score"]):
            raise AnnotationError(f"{where}: 'score' must be a finite number, got {_describe(pred['score'])}")
        for part, _, _, _ in parts:
            key = f"{part}_score"
            if key in pred and not _is_finite_number(pred[key]):
                raise AnnotationError(f"{where}: {key!r} must be a finite number, got {_describe(pred[key])}")
        if parts and "wholebody_score" in pred and not _is_finite_number(pred["wholebody_score"]):
            raise AnnotationError(f"{where}: 'wholebody_score' must be a finite number")
        if first_bbox:
            bbox = pred.get("bbox")
            if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not _all_finite_numbers(bbox):
                raise AnnotationError(
                    f"{where}: 'bbox' must be 4 finite numbers [x, y, w, h] (got {_describe(bbox)}): prediction 0 has "
                    "a 'bbox', and pycocotools then takes every detection's area from its box; give every "
                    "prediction a box or none"
                )
        elif i == 0:
            for key in ("segmentation", "caption"):
                if key in pred:
                    raise AnnotationError(
                        f"{where}: has {key!r} but no 'bbox': pycocotools would read the file as {key} results; "
                        f"drop {key!r} from keypoint results"
                    )


def _has_bbox(pred: Mapping[str, Any]) -> bool:
    """pycocotools' test (on the first result) for reading results as boxes: a 'bbox' that is not []."""
    return "bbox" in pred and not pred["bbox"] == []


def _check_prediction_keypoints(values: Any, expected: int, where: str, field: str, info: DatasetInfo) -> None:
    if not isinstance(values, (list, tuple)):
        raise AnnotationError(f"{where}: {field!r} must be a flat list of numbers (x, y, score per keypoint)")
    n = len(values)
    if n != 3 * expected:
        hint = ""
        if field == "keypoints" and n % 3 == 0 and n > 0:
            hint = f": the model predicts {n // 3} keypoints; {_suggest(n // 3, None)} or use a model for {info.name}"
        elif n == 2 * expected:
            hint = ": keypoints need a score after each x, y (x, y, score triplets)"
        raise AnnotationError(
            f"{where}: {field!r} has {n} values but dataset {info.name!r} has {expected} keypoints "
            f"({3 * expected} values: x, y, score for each){hint}"
        )
    if not _all_finite_numbers(values):
        bad = _first_bad_number(values)
        raise AnnotationError(
            f"{where}: {field!r}[{bad}] is {_describe(values[bad])}, not a finite number: fix or drop the prediction"
        )


def _check_multipart_prediction(
    pred: dict[str, Any], where: str, info: DatasetInfo, parts: list[tuple[str, str, int, int]]
) -> None:
    k = info.num_keypoints
    part_fields = [field for _, field, start, _ in parts if start > 0]
    values = pred["keypoints"]
    if isinstance(values, (list, tuple)) and len(values) == 3 * k and not any(f in pred for f in part_fields):
        _check_prediction_keypoints(values, k, where, "keypoints", info)
        return
    for _, field, start, stop in parts:
        if field not in pred:
            layout = ", ".join(f"{f!r} ({b - a} x 3)" for _, f, a, b in parts)
            raise AnnotationError(
                f"{where}: missing {field!r}: a {info.display_name} prediction has either one 'keypoints' list of "
                f"{k} x 3 numbers or the mmpose layout {layout}"
            )
        _check_prediction_keypoints(pred[field], stop - start, where, field, info)


def _annotations_and_info(annotations: Any, dataset: DatasetLike) -> tuple[dict[str, Any], DatasetInfo]:
    info = get_dataset_info(dataset)
    return load_coco_keypoints(annotations, info), info


def validate_predictions(
    predictions: list[dict[str, Any]] | PathLike,
    annotations: PathLike | Mapping[str, Any],
    dataset: DatasetLike = "coco",
) -> None:
    """Check COCO keypoint results against an annotation file before scoring.

    Each result is an object with ``image_id`` (an image of `annotations`), ``category_id`` (one of its categories;
    required, never defaulted), ``keypoints`` (``3 * K`` finite numbers: x, y, score per keypoint; for
    COCO-WholeBody either 133 x 3 in ``keypoints`` or the mmpose layout with 17 x 3 in ``keypoints`` plus
    ``foot_kpts``, ``face_kpts``, ``lefthand_kpts``, ``righthand_kpts``) and a finite ``score``. When the first
    result has a non-empty ``bbox`` (pycocotools then reads every result's area from its box) all need one.

    Args:
        predictions: The list of results, or the path of a JSON file holding it.
        annotations: Annotation file path or loaded dict (checked with :func:`load_coco_keypoints`).
        dataset: Data set name, index or :class:`DatasetInfo`.

    Raises:
        AnnotationError: On the first bad entry; the message names the file, the entry index and the field.
    """
    gt, info = _annotations_and_info(annotations, dataset)
    preds, source = _read_predictions(predictions)
    _validate_predictions(preds, gt, info, source)


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
