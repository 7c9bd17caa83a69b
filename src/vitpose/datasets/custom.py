"""Keypoint metadata for training: a known data set, a small JSON file for a custom skeleton, or the categories of a
COCO-format annotation file.

A custom data set file is one JSON object (`vitpose train --dataset my_skeleton.json`)::

    {
      "name": "hand5",
      "keypoints": ["wrist", "left_tip", "right_tip", "left_base", "right_base"],
      "skeleton": [["wrist", "left_base"], ["left_base", "left_tip"], [0, 4], [4, 2]],
      "flip_pairs": [["left_tip", "right_tip"], ["left_base", "right_base"]],
      "sigmas": [0.05, 0.03, 0.03, 0.04, 0.04],
      "joint_weights": [1, 1.5, 1.5, 1, 1],            (optional, default 1 each)
      "upper_body": ["left_tip", "right_tip"],          (optional: half-body augmentation; names or indices)
      "lower_body": ["wrist", "left_base", "right_base"],
      "dataset_index": 0,                               (optional: ViTPose++ expert and head, default 0)
      "display_name": "Hand (5 points)", "is_animal": false
    }

Keypoints in `skeleton`, `flip_pairs`, `upper_body` and `lower_body` are given by name or 0-based index. Only
`name`, `keypoints` and `sigmas` are required (`flip_pairs` defaults to none: a flipped sample then keeps its
channels, right only for symmetric-free skeletons, so give them when the skeleton has sides).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vitpose.datasets import DATASETS, DatasetInfo, get_dataset_info
from vitpose.errors import AnnotationError, DatasetError

__all__ = [
    "dataset_info_from_dict",
    "dataset_info_to_dict",
    "infer_dataset_info",
    "is_registered",
    "load_dataset_info",
    "resolve_dataset_info",
]

_PALETTE = ((255, 128, 0), (51, 153, 255), (0, 255, 0), (255, 51, 51), (255, 153, 255), (102, 178, 255))
_DEFAULT_SIGMA = 0.05
_SIDES = (("left", "right"), ("l", "r"))


def _index(value: Any, names: Sequence[str], where: str) -> int:
    """A keypoint given by name or 0-based index -> index."""
    if isinstance(value, bool):
        raise DatasetError(f"{where}: {value!r} is not a keypoint name or index")
    if isinstance(value, int):
        if not 0 <= value < len(names):
            raise DatasetError(f"{where}: keypoint index {value} out of range [0, {len(names)})")
        return value
    if isinstance(value, str):
        if value not in names:
            raise DatasetError(f"{where}: unknown keypoint name {value!r}; the keypoints are {list(names)}")
        return names.index(value)
    raise DatasetError(f"{where}: {value!r} is not a keypoint name or index")


def _pairs(values: Any, names: Sequence[str], where: str) -> list[tuple[int, int]]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in values):
        raise DatasetError(f"{where} must be a list of [a, b] pairs of keypoint names or indices, got {values!r}")
    return [(_index(a, names, where), _index(b, names, where)) for a, b in values]


def _numbers(values: Any, count: int, where: str, default: float | None = None) -> list[float]:
    if values is None:
        if default is None:
            raise DatasetError(f"{where} is required: one number per keypoint ({count})")
        return [default] * count
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise DatasetError(f"{where} must be a list of numbers, got {values!r}")
    if len(values) != count:
        raise DatasetError(f"{where} has {len(values)} entries but there are {count} keypoints (one each)")
    return [float(v) for v in values]


def dataset_info_from_dict(data: Mapping[str, Any], source: str = "data set description") -> DatasetInfo:
    """Build a `DatasetInfo` from the JSON object described in this module's docstring.

    Raises:
        ValueError: naming `source` and the offending field.
    """
    if not isinstance(data, Mapping):
        raise DatasetError(
            f"{source}: expected a JSON object (name, keypoints, sigmas, ...), got {type(data).__name__}"
        )
    known = {
        "name", "keypoints", "keypoint_names", "skeleton", "flip_pairs", "sigmas", "joint_weights", "upper_body",
        "lower_body", "upper_body_ids", "lower_body_ids", "dataset_index", "display_name", "is_animal",
        "keypoint_colors", "link_colors",
    }  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise DatasetError(f"{source}: unknown field(s) {unknown}; known fields: {sorted(known)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise DatasetError(f"{source}: 'name' (a non-empty string) is required")
    names = data.get("keypoints", data.get("keypoint_names"))
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{source}: 'keypoints' must be a non-empty list of keypoint names")
    k = len(names)
    skeleton = _pairs(data.get("skeleton"), names, f"{source}: skeleton")
    flip_pairs = _pairs(data.get("flip_pairs"), names, f"{source}: flip_pairs")
    sigmas = _numbers(data.get("sigmas"), k, f"{source}: sigmas")
    joint_weights = _numbers(data.get("joint_weights"), k, f"{source}: joint_weights", default=1.0)
    upper = [_index(v, names, f"{source}: upper_body") for v in data.get("upper_body", data.get("upper_body_ids", []))]
    lower = [_index(v, names, f"{source}: lower_body") for v in data.get("lower_body", data.get("lower_body_ids", []))]
    if upper and not lower:
        lower = [i for i in range(k) if i not in upper]
    index = data.get("dataset_index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise DatasetError(f"{source}: dataset_index must be an integer >= 0, got {index!r}")
    kcolors = data.get("keypoint_colors") or [_PALETTE[i % len(_PALETTE)] for i in range(k)]
    lcolors = data.get("link_colors") or [_PALETTE[i % len(_PALETTE)] for i in range(len(skeleton))]
    try:
        return DatasetInfo(
            name=name,
            dataset_index=index,
            keypoint_names=tuple(names),
            skeleton=tuple(skeleton),
            flip_pairs=tuple(flip_pairs),
            sigmas=tuple(sigmas),
            joint_weights=tuple(joint_weights),
            upper_body_ids=tuple(upper),
            lower_body_ids=tuple(lower),
            keypoint_colors=tuple(tuple(c) for c in kcolors),
            link_colors=tuple(tuple(c) for c in lcolors),
            display_name=str(data.get("display_name") or name),
            is_animal=bool(data.get("is_animal", False)),
        )
    except (ValueError, TypeError) as err:
        raise DatasetError(f"{source}: {err}") from None


def load_dataset_info(path: str | os.PathLike[str]) -> DatasetInfo:
    """Read a custom data set description (JSON) into a `DatasetInfo`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"data set description not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: cannot read it as JSON ({err})") from None
    return dataset_info_from_dict(data, str(path))


def resolve_dataset_info(spec: str | int | DatasetInfo | Mapping[str, Any] | os.PathLike[str]) -> DatasetInfo:
    """A `DatasetInfo` from a name or index of a known data set, a JSON file path, a dict, or a `DatasetInfo`."""
    if isinstance(spec, DatasetInfo):
        return spec
    if isinstance(spec, Mapping):
        return dataset_info_from_dict(spec)
    if isinstance(spec, os.PathLike) or (isinstance(spec, str) and (spec.endswith(".json") or Path(spec).is_file())):
        return load_dataset_info(spec)
    if isinstance(spec, str) and spec.isdigit():
        spec = int(spec)
    return get_dataset_info(spec)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _infer_flip_pairs(names: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs of names that differ only in a left/right marker (`left_eye`/`right_eye`, `L_Eye`/`R_Eye`)."""
    tokens = [re.split(r"[^a-zA-Z0-9]+", n.lower()) for n in names]
    lookup = {tuple(t): i for i, t in enumerate(tokens)}
    pairs = []
    for i, toks in enumerate(tokens):
        for left, right in _SIDES:
            if left in toks:
                mirrored = tuple(right if t == left else t for t in toks)
                j = lookup.get(mirrored)
                if j is not None and j != i and all(i not in p and j not in p for p in pairs):
                    pairs.append((i, j))
    return pairs


def infer_dataset_info(annotations: Mapping[str, Any] | list[Any], source: str = "annotations") -> DatasetInfo:
    """The data set of an annotation file (a loaded COCO-format object or MPII list): the one set of rules that
    `vitpose eval`, `vitpose train` and the Python API all use.

    1. A JSON list is MPII (the mmpose MPII format is a list of people).
    2. Anything else must be a COCO-format object with an ``annotations`` list; the first annotation with
       ``keypoints`` decides (none: an error).
    3. An annotation with ``foot_kpts`` is COCO-WholeBody.
    4. With K = len(keypoints) / 3: when the annotation's category (or else the first category) lists K keypoint
       names and they are a known data set's names (compared without case and punctuation, so "Right Shoulder"
       is "right_shoulder"), it is that data set (AP-10K rather than APT-36K, which has the same table).
    5. K = 17: COCO, unless the categories are named and none is ``person``: AP-10K.
    6. K = 14: AI Challenger.
    7. Otherwise a custom skeleton from the category's ``keypoints`` (K names are needed, else an error that asks
       for a data set file) and 1-based ``skeleton``, with left/right flip pairs guessed from the names and an OKS
       sigma of 0.05 for every keypoint (a warning says so: give a data set file, ``--dataset FILE``, for real
       sigmas, or evaluate a checkpoint trained on that data set, whose config keeps them).

    Raises:
        AnnotationError: neither a COCO-format object nor an MPII list, no annotation with keypoints, or a keypoint
            count that fits no known data set without K keypoint names in the categories.
    """
    if isinstance(annotations, list):
        return DATASETS["mpii"]
    if not isinstance(annotations, Mapping) or not isinstance(annotations.get("annotations"), list):
        raise AnnotationError(
            f"{source}: the annotations are neither a COCO-format object (images, annotations, categories) nor an "
            "MPII list"
        )
    ann = next((a for a in annotations["annotations"] if isinstance(a, Mapping) and "keypoints" in a), None)
    if ann is None:
        raise AnnotationError(f"{source}: no annotation has 'keypoints'; is this a COCO-format keypoint file?")
    if "foot_kpts" in ann:
        return DATASETS["wholebody"]
    values = ann["keypoints"]
    count = len(values) // 3 if isinstance(values, (list, tuple)) else 0
    raw = annotations.get("categories")
    categories = [c for c in raw if isinstance(c, Mapping)] if isinstance(raw, list) else []
    with_names = [c for c in categories if isinstance(c.get("keypoints"), list)]
    cat = next((c for c in with_names if c.get("id") == ann.get("category_id")), with_names[0] if with_names else None)
    names = [str(n) for n in cat["keypoints"]] if cat is not None else []
    if names and len(names) == count:
        normalised = [_norm(n) for n in names]
        for info in DATASETS.values():
            if info.name != "apt36k" and [_norm(n) for n in info.keypoint_names] == normalised:
                return info
    if count == 17:
        labels = {str(c.get("name") or "").lower() for c in categories} - {""}
        return DATASETS["coco" if not labels or "person" in labels else "ap10k"]
    if count == 14:
        return DATASETS["aic"]
    if cat is None or len(names) != count:
        raise AnnotationError(
            f"{source}: annotations have {count} keypoints per instance, which fits no known data set (COCO 17, AI "
            f"Challenger 14, MPII 16, WholeBody 133), and the categories give {len(names)} keypoint names: describe "
            "the data set in a JSON file (--dataset my_dataset.json)"
        )
    skeleton = [
        (a - 1, b - 1)
        for a, b in (p for p in cat.get("skeleton", []) if isinstance(p, (list, tuple)) and len(p) == 2)
        if isinstance(a, int) and isinstance(b, int) and 1 <= a <= count and 1 <= b <= count and a != b
    ]
    warnings.warn(
        f"{source}: custom skeleton '{cat.get('name', 'custom')}' with {count} keypoints; no OKS sigmas are known, "
        f"so {_DEFAULT_SIGMA} is used for every keypoint (AP is then only a relative measure) and left/right pairs "
        "are guessed from the names. Describe the data set in a JSON file (--dataset FILE) to set them.",
        stacklevel=2,
    )
    return dataset_info_from_dict(
        {
            "name": str(cat.get("name") or "custom"),
            "keypoints": names,
            "skeleton": [list(p) for p in skeleton],
            "flip_pairs": [list(p) for p in _infer_flip_pairs(names)],
            "sigmas": [_DEFAULT_SIGMA] * count,
        },
        source,
    )


def is_registered(info: DatasetInfo) -> bool:
    """Whether `info` is one of the known data sets (its registry entry, up to its `dataset_index`)."""
    known = DATASETS.get(info.name)
    return known is not None and dataclasses.replace(info, dataset_index=known.dataset_index) == known


def dataset_info_to_dict(info: DatasetInfo) -> dict[str, Any]:
    """The JSON description of a data set (the format of this module's docstring), the inverse of
    `dataset_info_from_dict`: what a checkpoint's ``config.json`` keeps of its main head's custom data set.

    Keypoints in ``skeleton``, ``flip_pairs``, ``upper_body`` and ``lower_body`` are written as 0-based indices.
    """
    return {
        "name": info.name,
        "keypoints": list(info.keypoint_names),
        "skeleton": [list(p) for p in info.skeleton],
        "flip_pairs": [list(p) for p in info.flip_pairs],
        "sigmas": list(info.sigmas),
        "joint_weights": list(info.joint_weights),
        "upper_body": list(info.upper_body_ids),
        "lower_body": list(info.lower_body_ids),
        "dataset_index": info.dataset_index,
        "display_name": info.display_name,
        "is_animal": info.is_animal,
        "keypoint_colors": [list(c) for c in info.keypoint_colors],
        "link_colors": [list(c) for c in info.link_colors],
    }
