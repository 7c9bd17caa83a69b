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

import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vitpose.datasets import DATASETS, DatasetInfo, get_dataset_info
from vitpose.errors import DatasetError

__all__ = ["dataset_info_from_dict", "infer_dataset_info", "load_dataset_info", "resolve_dataset_info"]

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
    """The data set of a COCO-format annotation object (or MPII list), from its keypoint count and category.

    A known data set (COCO, AI Challenger, AP-10K, COCO-WholeBody) is recognised by its keypoint names or, without
    names, by its count. Anything else becomes a custom `DatasetInfo` from the category's `keypoints` and 1-based
    `skeleton`, with left/right pairs guessed from the names and OKS sigmas of 0.05 (a warning says so: give a data
    set file for real sigmas).
    """
    if isinstance(annotations, list):
        return DATASETS["mpii"]  # the mmpose MPII format is a JSON list of people
    anns = [a for a in annotations.get("annotations", []) if isinstance(a, Mapping) and "keypoints" in a]
    if not anns:
        raise DatasetError(f"{source}: no annotation has 'keypoints'; is this a COCO-format keypoint file?")
    if "foot_kpts" in anns[0]:
        return DATASETS["wholebody"]
    count = len(anns[0]["keypoints"]) // 3
    categories = [c for c in annotations.get("categories", []) if isinstance(c, Mapping)]
    cat = next((c for c in categories if isinstance(c.get("keypoints"), list)), None)
    names = [str(n) for n in cat["keypoints"]] if cat is not None else []
    if names and len(names) == count:
        for info in DATASETS.values():
            if [_norm(n) for n in info.keypoint_names] == [_norm(n) for n in names]:
                if info.name == "apt36k":
                    continue  # same table as AP-10K
                return info
    elif count == 17:
        label = str(cat.get("name", "")).lower() if cat is not None else "person"
        return DATASETS["coco" if label in ("", "person") else "ap10k"]
    elif count == 14:
        return DATASETS["aic"]
    if len(names) != count:
        raise DatasetError(
            f"{source}: instances have {count} keypoints, which fits no known data set, and the category gives "
            f"{len(names)} keypoint names; describe the data set in a JSON file (--dataset my_dataset.json)"
        )
    skeleton = [(a - 1, b - 1) for a, b in cat.get("skeleton", []) if 1 <= a <= count and 1 <= b <= count and a != b]
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
