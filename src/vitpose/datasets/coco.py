"""The one reader of COCO-format files: keypoint annotations, keypoint results and detections.

Every command and module that reads a COCO file goes through here (evaluation, training, the boxes detector, the
command line), so that one file is read and checked the same way everywhere, and every error names the file, the
entry and the field, and says what to do (an `AnnotationError`, a `VitPoseError`).

- `read_json(path, what)`: a JSON file, or an error naming it (missing, a directory, not UTF-8, not JSON, nested
  too deeply: a clear error, not a `RecursionError`).
- `load_coco_keypoints(path_or_dict, dataset)`: a keypoint annotation file checked against a data set's keypoint
  layout, with the fields pycocotools needs filled in (see its docstring and `vitpose.evaluation.metrics`).
- `read_keypoint_results`, `check_keypoint_results`, `validate_predictions`: COCO keypoint results (`image_id`,
  `category_id`, `keypoints`, `score`).
- `read_detections`, `parse_detection`: a COCO detections (results) file, a JSON list of `image_id` (or
  `file_name`), `bbox` [x, y, w, h], `score`, `category_id`.
- `image_file_names`: image id -> file name of an annotation file's `images`.
- `clip_gt_box`: mmpose's ground-truth box clipping, used by the evaluation's ground-truth boxes and by training.
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.datasets.metadata import DATASETS, DatasetInfo, get_dataset_info
from vitpose.errors import AnnotationError, VitPoseError

__all__ = [
    "Detection",
    "check_keypoint_results",
    "clip_gt_box",
    "image_file_names",
    "load_coco_keypoints",
    "parse_detection",
    "read_detections",
    "read_json",
    "read_keypoint_results",
    "validate_predictions",
]

# xtcocotools' area for annotations without one (CrowdPose, AI Challenger): 0.53 of the box.
_AREA_FROM_BOX = 0.53

DatasetLike = str | int | DatasetInfo
PathLike = str | os.PathLike


# ---------------------------------------------------------------------------------------------------------------------
# Reading a JSON file.


def read_json(
    path: PathLike,
    what: str,
    *,
    expected: str | None = None,
    error: type[VitPoseError] = AnnotationError,
) -> Any:
    """The content of a JSON file, or `error` naming the file and what it should have been.

    Args:
        path: the file.
        what: what the file is, for messages ("annotation", "annotations", "detections", "predictions", ...).
        expected: what to pass instead, for messages (default "a COCO-format {what} file").
        error: the exception class raised (an `AnnotationError` unless the caller has its own, e.g. the boxes
            detector's `BoxesFileError`).

    Raises:
        `error`: the file is missing, a directory, unreadable, not UTF-8, not JSON or nested too deeply to read
            (a JSON nesting of about a thousand levels: an error, not a `RecursionError`).
    """
    path = Path(path)
    expected = expected or f"a COCO-format {what} file"
    if not path.exists():
        raise error(f"{what} file not found: {path}: check the path")
    if path.is_dir():
        raise error(f"{what} file {path} is a directory: pass the JSON file inside it")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{path} is not a UTF-8 text file: pass {expected}") from None
    except OSError as err:
        raise error(f"cannot read the {what} file {path}: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}): cannot read it as JSON; "
            f"a {what} file that is not JSON cannot be used, pass {expected}"
        ) from None
    except RecursionError:
        raise error(f"{path}: its JSON is nested too deeply to be read: pass {expected}") from None


def _load(path_or_obj: Any, what: str) -> tuple[Any, str]:
    """(loaded object, name used in messages) for a path or an already loaded object."""
    if isinstance(path_or_obj, (str, os.PathLike)):
        return read_json(path_or_obj, what), str(path_or_obj)
    return path_or_obj, "annotations" if what == "annotation" else what


# ---------------------------------------------------------------------------------------------------------------------
# Small helpers.


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    try:
        return _is_number(value) and math.isfinite(value)
    except OverflowError:  # an integer too large for a float (JSON allows 1e400 written as digits)
        return False


def _as_float(value: Any) -> float:
    """float(value), with integers too large for a float as +-inf (not an OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


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


# ---------------------------------------------------------------------------------------------------------------------
# Keypoint annotations and keypoint results.


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


def load_coco_keypoints(
    path_or_dict: PathLike | Mapping[str, Any], dataset: DatasetLike = "coco", *, source: str | None = None
) -> dict[str, Any]:
    """Read and check a COCO-format keypoint annotation file against a data set's keypoint layout.

    Args:
        path_or_dict: Path to the JSON file, or its already loaded content (left untouched).
        dataset: Data set name, ViTPose++ index or :class:`DatasetInfo`; fixes K, the keypoints per instance.
        source: the name messages give the file (default: its path, or "annotations" for a loaded object).

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
    obj, name = _load(path_or_dict, "annotation")
    source = source or name
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


def read_keypoint_results(predictions: Any) -> tuple[list[Any], str]:
    """(results, name for messages) of a COCO keypoint results file (a path) or an already loaded list.

    Raises:
        AnnotationError: unreadable file, or a top level that is not a list (an annotation file is named as such).
    """
    obj, source = _load(predictions, "predictions")
    if not isinstance(obj, list):
        hint = ""
        if isinstance(obj, Mapping) and "annotations" in obj:
            hint = " (this looks like an annotation file: pass it as --annotations)"
        raise AnnotationError(
            f"{source}: predictions must be a JSON list of COCO keypoint results "
            f"(image_id, category_id, keypoints, score), got {type(obj).__name__}{hint}"
        )
    return obj, source


def check_keypoint_results(predictions: list[Any], gt: Mapping[str, Any], info: DatasetInfo, source: str) -> None:
    """Check COCO keypoint results against annotations checked by :func:`load_coco_keypoints` (see
    :func:`validate_predictions`)."""
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
    preds, source = read_keypoint_results(predictions)
    check_keypoint_results(preds, gt, info, source)


# ---------------------------------------------------------------------------------------------------------------------
# Ground-truth boxes.


def clip_gt_box(bbox: Sequence[float], width: float | None = None, height: float | None = None) -> list[float] | None:
    """mmpose's cleaning of a ground-truth box: [x, y, w, h] clipped to the image, or None when nothing is left.

    x1 = max(0, x), x2 = min(W - 1, x1 + max(0, w - 1)) (likewise y), kept when x2 > x1 and y2 > y1, returned as
    [x1, y1, x2 - x1, y2 - y1]: a box inside the image loses one pixel of width and height, exactly as in the
    evaluation that produced the published numbers and in the original's training data. Without the image size
    (None) the box is clipped at 0 only. The evaluation's ground-truth boxes and the training instances both use
    this function.
    """
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = x1 + max(0.0, w - 1) if width is None else min(width - 1.0, x1 + max(0.0, w - 1))
    y2 = y1 + max(0.0, h - 1) if height is None else min(height - 1.0, y1 + max(0.0, h - 1))
    if not (x2 > x1 and y2 > y1):
        return None
    return [x1, y1, x2 - x1, y2 - y1]


# ---------------------------------------------------------------------------------------------------------------------
# Image ids and file names.


def image_file_names(
    annotations: PathLike | Mapping[str, Any], *, error: type[VitPoseError] = AnnotationError
) -> dict[Any, str]:
    """image id -> `file_name` of a COCO annotation file's `images` (a path or the loaded object).

    Raises:
        `error`: unreadable file, no `images` list, an image without `id` or a `file_name` string, an id used twice.
    """
    if isinstance(annotations, (str, os.PathLike)):
        data, source = read_json(annotations, "annotations", error=error), str(annotations)
    else:
        data, source = annotations, "annotations"
    if not isinstance(data, Mapping) or not isinstance(data.get("images"), list):
        raise error(
            f"{source}: expected a COCO annotations file, a JSON object whose 'images' is a list of "
            "{'id', 'file_name'}"
        )
    out: dict[Any, str] = {}
    for index, image in enumerate(data["images"]):
        if not isinstance(image, Mapping) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise error(f"{source}: images[{index}] must be an object with 'id' and a 'file_name' string")
        try:
            seen = image["id"] in out
        except TypeError:
            raise error(f"{source}: images[{index}]: 'id' must be an integer or a string") from None
        if seen:
            raise error(f"{source}: images[{index}]: image id {image['id']!r} appears twice")
        out[image["id"]] = image["file_name"]
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Detections (COCO results format, boxes only).


@dataclass(frozen=True)
class Detection:
    """One checked entry of a detections file.

    Attributes:
        index: its position in the file.
        image_id: the entry's `image_id` (None when it has none; then `file_name` says the image).
        file_name: the entry's `file_name`, or None.
        bbox: [x, y, w, h] as floats; they may be non-finite, and width and height may be <= 0: what to do with
            such a box is the caller's policy (`vitpose.detectors.boxes.skip_degenerate_boxes`: skip and report).
        score: the `score` (1.0 when missing).
        category_id: the `category_id` (1, COCO's person, when missing).
    """

    index: int
    image_id: Any
    file_name: str | None
    bbox: tuple[float, float, float, float]
    score: float
    category_id: int


def read_detections(
    detections: PathLike | Sequence[Any], *, error: type[VitPoseError] = AnnotationError
) -> tuple[list[Any], str]:
    """(entries, name for messages) of a COCO detections file (a path) or an already loaded list.

    Raises:
        `error`: unreadable file, or a top level that is not a JSON list (an annotation file is named as such).
    """
    if isinstance(detections, (str, os.PathLike)):
        entries, source = read_json(detections, "detections", error=error), str(detections)
    else:
        entries, source = detections, "detections"
    if isinstance(entries, Mapping):
        hint = (
            " It looks like a COCO annotations file (images/annotations): pass it as the annotations and the "
            "detections list as the boxes file."
            if "images" in entries
            else ""
        )
        raise error(
            f"{source}: expected a JSON list of detections [{{'image_id' or 'file_name', 'bbox': [x, y, w, h], "
            f"'score', 'category_id'}}, ...], got an object with keys {sorted(entries)[:8]}.{hint}"
        )
    if not isinstance(entries, list):
        raise error(f"{source}: expected a JSON list of detections, got {type(entries).__name__}")
    return entries, source


def parse_detection(entry: Any, index: int, source: str, *, error: type[VitPoseError] = AnnotationError) -> Detection:
    """One detections entry, checked: an object with a `bbox` of 4 numbers, a numeric `score` (default 1), an
    integer `category_id` (default 1) and an `image_id` or a `file_name` string. The one parser of such entries
    (`vitpose predict --boxes` and `vitpose eval --detections`); a box that cannot hold a person (not finite, width
    or height <= 0) or a NaN or infinite score is not an error here: the callers skip and report the entry
    (`vitpose.detectors.boxes.skip_degenerate_boxes`).

    Raises:
        `error`: naming the file, the entry index and the field.
    """
    where = f"{source}: entry {index}"
    if not isinstance(entry, Mapping):
        raise error(f"{where} is a {type(entry).__name__}, expected an object with 'bbox' and 'image_id'")
    if "bbox" not in entry:
        raise error(f"{where} has no 'bbox' (keys: {sorted(entry)})")
    box = entry["bbox"]
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_is_real(v) for v in box):
        raise error(f"{where}: bbox must be a list of 4 numbers [x, y, width, height], got {box!r:.120}")
    score = entry.get("score", 1.0)
    if not _is_real(score):
        raise error(f"{where}: score must be a finite number, got {score!r:.60}")
    category = entry.get("category_id", 1)
    if isinstance(category, bool) or not isinstance(category, numbers.Integral) or not -(2**63) <= category < 2**63:
        raise error(f"{where}: category_id must be an integer, got {category!r:.60}")
    name = entry.get("file_name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise error(f"{where}: file_name must be a non-empty string, got {name!r:.60}")
    if name is None and "image_id" not in entry:
        raise error(f"{where} has neither 'image_id' nor 'file_name' (keys: {sorted(entry)})")
    return Detection(
        index=index,
        image_id=entry.get("image_id"),
        file_name=name,
        bbox=tuple(_as_float(v) for v in box),  # type: ignore[arg-type]
        score=_as_float(score),
        category_id=int(category),
    )
