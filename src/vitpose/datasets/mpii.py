"""MPII single-person annotations (the mmpose 0.x JSON list), read with the original's centre and scale arithmetic.

The format and the loading steps are described in `vitpose.evaluation.mpii`, which scores them (PCKh) and reads the
official head boxes (`mpii_gt_val.mat`, with scipy); training reads the same file through `load_mpii` here.

A JSON list, one entry per person, the format of mmpose's ``mpii_val.json``::

    {"image": "005808361.jpg", "joints": [[x, y], ...16], "joints_vis": [1, 0, ...16],
     "center": [x, y], "scale": 4.718488}

Coordinates are MATLAB 1-based; ``scale`` is the person height in units of 200 px.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.datasets.metadata import get_dataset_info
from vitpose.errors import AnnotationError, VitPoseError

__all__ = ["MPII_JOINT_NAMES", "SC_BIAS", "MpiiAnnotationError", "MpiiSample", "load_mpii"]

NUM_JOINTS = 16
SC_BIAS = 0.6
"""Head size = SC_BIAS x the diagonal of the head box (the original's constant)."""
PIXEL_STD = 200.0
PADDING = 1.25
CENTER_SHIFT = 15.0
UPPER_NECK, HEAD_TOP = 8, 9

MPII_JOINT_NAMES: tuple[str, ...] = get_dataset_info("mpii").keypoint_names
"""Joint order of MPII (the same as ``get_dataset_info("mpii").keypoint_names``)."""

HEAD_SOURCES = ("headbox", "mat", "neck_head_top")

_JSON_FIELDS = "image, joints, joints_vis, center, scale"

HeadBoxReader = Callable[[Path], "tuple[np.ndarray, np.ndarray | None]"]
"""Reads a head-box file: (N,) head sizes in pixels and, where the file has them, the (16, 2, N) 1-based ground-truth
joints (``pos_gt_src``) to check that the file belongs to the annotations (None: no check)."""


class MpiiAnnotationError(AnnotationError):
    """An MPII annotation (JSON) or head-box (``.mat``) file that cannot be used; the message names the file, the
    entry and the field, and says what to do."""


@dataclass
class MpiiSample:
    """One annotated person of an MPII file, in the units the pipeline uses.

    Attributes:
        image: image file name as written in the file (relative to the image folder).
        joints: ``(16, 2)`` float64 joint ``(x, y)`` in 0-based image pixels (the file's values - 1). Unlabelled joints
            keep the file's placeholder (usually ``-1 - 1 = -2``).
        visible: ``(16,)`` bool, ``joints_vis > 0`` (the joint is labelled).
        center: ``(2,)`` float64 crop centre in 0-based image pixels, after the original's ``+15 * scale`` shift of y.
        scale: ``(2,)`` float64 crop extent ``(w, h)`` in pixels, ``scale * 1.25 * 200`` on both axes (square;
            ``scale * 200`` and no centre shift for an entry whose ``center[0]`` is -1, as the original).
        head_size: PCKh normaliser in pixels (``0.6 x`` head-box diagonal, or the fallback), or None when unknown
            (the sample is then left out of PCKh).
        head_source: where ``head_size`` came from: ``"headbox"`` (the entry's field), ``"mat"`` (``headboxes_src``
            of ``mpii_gt_val.mat``), ``"neck_head_top"`` (fallback, not official), or None.
    """

    image: str
    joints: np.ndarray
    visible: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    head_size: float | None = None
    head_source: str | None = None


# ----------------------------------------------------------------------------------------------------------- loading


def _fail(path: Path | str, index: int | None, field: str | None, problem: str, fix: str) -> MpiiAnnotationError:
    where = str(path)
    if index is not None:
        where += f": entry {index}"
    if field is not None:
        where += f", field '{field}'"
    return MpiiAnnotationError(f"{where}: {problem}; {fix}")


def _finite_array(value: Any) -> np.ndarray | None:
    """``value`` as a float64 array, or None when it is not a (rectangular) array of real numbers."""
    if isinstance(value, (str, bytes, Mapping)) or value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _crop_center_scale(center: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The original's ``_get_db`` arithmetic, in its ``float32``: returns (centre 0-based, extent in pixels)."""
    c = np.asarray(center, dtype=np.float32).copy()
    s = np.array([scale, scale], dtype=np.float32)
    if c[0] != -1:
        c[1] = c[1] + 15 * s[1]
        s = s * 1.25
    c = c - 1
    s_px = s * PIXEL_STD  # the original's `scale * 200.0` in the UDP affine and in transform_preds, float32 too
    return c.astype(np.float64), s_px.astype(np.float64)


def _headbox_size(value: Any) -> float | None:
    """``SC_BIAS x`` diagonal of ``[[x1, y1], [x2, y2]]`` or ``[x1, y1, x2, y2]``; None when malformed."""
    arr = _finite_array(value)
    if arr is None or arr.size != 4 or arr.shape not in ((2, 2), (4,)) or not np.all(np.isfinite(arr)):
        return None
    corners = arr.reshape(2, 2)
    return float(np.linalg.norm(corners[1] - corners[0]) * SC_BIAS)


def _check_positions(positions: np.ndarray | None, mat_path: Path, json_path: Any, samples: list[MpiiSample]) -> None:
    """Warn when the head-box file's ground truth (``pos_gt_src``, 1-based) disagrees with the JSON joints: the
    entries are matched by order, so a mismatch means the files do not belong together."""
    if positions is None:
        return
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (NUM_JOINTS, 2, len(samples)):
        return
    for i, sample in enumerate(samples):
        gt = pos[:, :, i] - 1.0
        diff = np.linalg.norm(gt[sample.visible] - sample.joints[sample.visible], axis=-1)
        if diff.size and np.nanmax(diff) > 1.0:
            warnings.warn(
                f"{mat_path}: person {i} of pos_gt_src differs from entry {i} of {json_path} by up to "
                f"{np.nanmax(diff):.1f} px: the head boxes are matched by order, check that the two files belong "
                "together (mpii_val.json with mpii_gt_val.mat)",
                UserWarning,
                stacklevel=4,
            )
            return


def load_mpii(
    path: str | Path | list[Any],
    headboxes: str | Path | None = None,
    *,
    read_headboxes: HeadBoxReader | None = None,
) -> list[MpiiSample]:
    """Load an MPII annotation file (mmpose 0.x JSON format) with the original's centre/scale arithmetic.

    Head sizes (the PCKh normaliser) are taken, per entry, from the first source that has one:

    1. the entry's optional ``headbox`` field, ``[[x1, y1], [x2, y2]]`` or ``[x1, y1, x2, y2]``:
       ``0.6 x`` its diagonal, as the original;
    2. ``headboxes``: the official ``mpii_gt_val.mat`` (its ``headboxes_src``, matched to the entries by order;
       the counts must agree);
    3. fallback: the distance between upper_neck (8) and head_top (9) when both are labelled. **This is not the
       official head box**: PCKh computed with it is not comparable with published numbers (the ViTPose papers'
       included). A ``UserWarning`` says how many samples use it.

    Entries with none of these get ``head_size=None`` and are left out of :func:`pckh`, which reports the count.

    Args:
        path: the JSON annotation file (e.g. ``mpii_val.json``): a list of entries with ``image`` (str), ``joints``
            (16 x 2), ``joints_vis`` (16), ``center`` (2) and ``scale`` (> 0, units of 200 px), coordinates 1-based.
            An already loaded list is accepted too (messages then name it "annotations").
        headboxes: optional path to ``mpii_gt_val.mat``, read by `read_headboxes`
            (`vitpose.evaluation.mpii.load_mpii` passes its reader, which needs scipy).
        read_headboxes: reads `headboxes` into head sizes (and the ground-truth joints, to check the pairing).

    Returns:
        One :class:`MpiiSample` per entry, in file order.

    Raises:
        FileNotFoundError: ``path`` or ``headboxes`` does not exist.
        MpiiAnnotationError: malformed content; the message names the file, the entry index and the field.
        ImportError: ``headboxes`` given but scipy is missing.
        VitPoseError: ``headboxes`` given without `read_headboxes`.
    """
    if isinstance(path, list):
        data, path = path, "annotations"
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"MPII annotation file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _fail(
                path, None, None, f"is not valid JSON ({exc})", "pass an MPII annotation file such as mpii_val.json"
            ) from exc
        except RecursionError:
            raise _fail(
                path, None, None, "is nested too deeply to be read as JSON", "pass an MPII annotation file"
            ) from None
    if not isinstance(data, list):
        hint = ""
        if isinstance(data, dict) and "annotations" in data:
            hint = " (it looks like a COCO-format file: pass --dataset coco)"
        raise _fail(
            path,
            None,
            None,
            f"top level is a JSON {type(data).__name__}, an MPII file is a list of entries{hint}",
            f"pass an MPII annotation file (a list of objects with {_JSON_FIELDS})",
        )

    samples = [_parse_entry(path, i, entry) for i, entry in enumerate(data)]

    if headboxes is not None:
        if read_headboxes is None:
            raise VitPoseError("reading the head boxes of an MPII file needs vitpose.evaluation.mpii.load_mpii (scipy)")
        sizes, positions = read_headboxes(Path(headboxes))
        if sizes.shape[0] != len(samples):
            raise _fail(
                headboxes,
                None,
                "headboxes_src",
                f"has {sizes.shape[0]} head boxes but {path} has {len(samples)} entries (they are matched by order)",
                "pass the .mat file that belongs to this annotation file (mpii_gt_val.mat goes with mpii_val.json)",
            )
        for sample, size in zip(samples, sizes, strict=True):
            if sample.head_size is None:
                sample.head_size, sample.head_source = float(size), "mat"
        _check_positions(positions, Path(headboxes), path, samples)

    fallback = 0
    for sample in samples:
        if sample.head_size is not None:
            continue
        if sample.visible[UPPER_NECK] and sample.visible[HEAD_TOP]:
            size = float(np.linalg.norm(sample.joints[HEAD_TOP] - sample.joints[UPPER_NECK]))
            if size > 0:
                sample.head_size, sample.head_source = size, "neck_head_top"
                fallback += 1
    if fallback:
        missing = sum(s.head_size is None for s in samples)
        extra = f"; {missing} more have no head size and are left out of PCKh" if missing else ""
        warnings.warn(
            f"{path}: {fallback} of {len(samples)} samples have no head box, so their PCKh head size is the "
            "upper_neck-head_top distance: NOT the official MPII head box, the PCKh is then not comparable with "
            f"published numbers (pass the official mpii_gt_val.mat to use the real head boxes){extra}",
            UserWarning,
            stacklevel=2,
        )
    return samples


def _parse_entry(path: Path | str, i: int, entry: Any) -> MpiiSample:
    if not isinstance(entry, dict):
        raise _fail(
            path, i, None, f"is a JSON {type(entry).__name__}", f"each entry must be an object with {_JSON_FIELDS}"
        )
    for field in ("image", "joints", "joints_vis", "center", "scale"):
        if field not in entry:
            raise _fail(
                path, i, field, "is missing", f"every entry needs {_JSON_FIELDS} (test-only files cannot be scored)"
            )

    image = entry["image"]
    if not isinstance(image, str) or not image:
        raise _fail(path, i, "image", f"is {image!r}, expected a file name", "set it to the image's file name")

    raw = entry["joints"]
    if isinstance(raw, list) and len(raw) != NUM_JOINTS:
        raise _joint_count_error(path, i, len(raw))
    joints = _finite_array(raw)
    if joints is None or joints.shape[:1] != (NUM_JOINTS,) or joints.ndim != 2 or joints.shape[1] < 2:
        raise _fail(
            path,
            i,
            "joints",
            "must be a list of 16 [x, y] pairs of numbers",
            "fix the entry or remove it from the file",
        )
    joints = joints[:, :2]
    if not np.all(np.isfinite(joints)):
        j = int(np.flatnonzero(~np.all(np.isfinite(joints), axis=1))[0])
        raise _fail(
            path, i, "joints", f"joint {j} is {joints[j].tolist()}, not finite", "unlabelled joints are written -1, -1"
        )

    vis = _finite_array(entry["joints_vis"])
    if vis is None or vis.shape != (NUM_JOINTS,) or not np.all(np.isfinite(vis)):
        raise _fail(
            path,
            i,
            "joints_vis",
            f"is {entry['joints_vis']!r}, expected 16 numbers",
            "write 1 for a labelled joint and 0 for an unlabelled one",
        )

    center = _finite_array(entry["center"])
    if center is None or center.shape != (2,) or not np.all(np.isfinite(center)):
        raise _fail(path, i, "center", f"is {entry['center']!r}, expected [x, y]", "give the person centre in pixels")

    scale = entry["scale"]
    if isinstance(scale, list) and len(scale) == 1:
        scale = scale[0]
    if not _is_number(scale) or not math.isfinite(scale) or scale <= 0:
        raise _fail(
            path,
            i,
            "scale",
            f"is {entry['scale']!r}, expected a number > 0",
            "give the person height in units of 200 px (MPII's scale)",
        )

    head_size = head_source = None
    if entry.get("headbox") is not None:
        head_size = _headbox_size(entry["headbox"])
        if head_size is None or head_size <= 0:
            raise _fail(
                path,
                i,
                "headbox",
                f"is {entry['headbox']!r}, expected [[x1, y1], [x2, y2]] or [x1, y1, x2, y2] with a positive size",
                "fix the head box or remove the field",
            )
        head_source = "headbox"

    c, s = _crop_center_scale(center, float(scale))
    return MpiiSample(
        image=image,
        joints=joints - 1.0,
        visible=vis > 0,
        center=c,
        scale=s,
        head_size=head_size,
        head_source=head_source,
    )


def _joint_count_error(path: Path | str, i: int, count: int) -> MpiiAnnotationError:
    problem = f"has {count} joints, MPII has 16"
    if count == 17:
        return _fail(path, i, "joints", problem + ": is it a COCO file? pass --dataset coco", "or fix the entry")
    return _fail(path, i, "joints", problem, "fix the entry (MPII joint order: r_ankle ... l_wrist)")


# ------------------------------------------------------------------------------------------------------------ metric
