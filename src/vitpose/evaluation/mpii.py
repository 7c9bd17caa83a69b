"""MPII single-person annotations and the PCKh metric, as the original ViTPose evaluation computes them.

ViTPose evaluates MPII with mmpose 0.x ``TopDownMpiiDataset`` (``mmpose/datasets/datasets/top_down/
topdown_mpii_dataset.py``). This module reproduces its loading arithmetic and its ``evaluate`` metric without
depending on mmpose.

Annotation file
---------------
A JSON list, one entry per person, the format of mmpose's ``mpii_val.json``::

    {"image": "005808361.jpg", "joints": [[x, y], ...16], "joints_vis": [1, 0, ...16],
     "center": [x, y], "scale": 4.718488}

Coordinates are MATLAB 1-based. ``scale`` is the person height in units of 200 px. Joint order (MPII)::

    0 r_ankle  1 r_knee  2 r_hip  3 l_hip  4 l_knee  5 l_ankle  6 pelvis  7 thorax
    8 upper_neck  9 head_top  10 r_wrist  11 r_elbow  12 r_shoulder  13 l_shoulder  14 l_elbow  15 l_wrist

What the original does on loading (``_get_db``), reproduced by :func:`load_mpii`:

* ``scale`` becomes ``(scale, scale)`` and, unless ``center[0] == -1``, the centre moves down by ``15 * scale``
  pixels (``center_y += 15 * scale``, "to avoid cropping limbs") and the scale is multiplied by 1.25 (context
  padding). The square extent is kept as is: with ViTPose's 192x256 input the UDP crop stretches it anisotropically,
  exactly as in the original (its MPII test pipeline has no aspect-ratio correction).
* The centre and the joints are shifted by ``-1`` (1-based to 0-based).
* The original holds centre and scale in ``float32``; the same ``float32`` steps are taken here, then stored as
  ``float64``. :class:`MpiiSample` keeps the extent **in pixels** (``scale * 1.25 * 200``), the unit of
  :func:`vitpose.ops.geometry.crop_boxes` and :meth:`vitpose.ops.codec.UDPHeatmapCodec.decode`.

PCKh (``evaluate``), reproduced by :func:`pckh`
-----------------------------------------------
* Predictions are made 1-based (``+ 1.0``) and compared with the 1-based ground truth of ``mpii_gt_val.mat``;
  a constant shift of both sides does not change a distance, so here 0-based predictions are compared with 0-based
  joints.
* Head size of a person: ``SC_BIAS * ||headbox[1] - headbox[0]||`` with ``SC_BIAS = 0.6``, the head box
  coming from ``headboxes_src`` of ``mpii_gt_val.mat``, shape ``(2, 2, N)``: (corner: top-left, bottom-right) x
  (x, y) x person.
* A joint is correct when ``||pred - gt|| / head_size <= threshold`` (``<=``, threshold 0.5); only labelled joints
  (``jnt_missing == 0``) count.
* Per joint: ``100 * correct / labelled`` over all persons.
* ``Head`` is head_top (joint 9); ``Shoulder``, ``Elbow``, ``Wrist``, ``Hip``, ``Knee``, ``Ankle`` are the plain mean
  of the left and right per-joint values. upper_neck (8) has no group of its own but counts in the mean.
* ``PCKh``: the mean of the per-joint values weighted by their labelled-joint counts, with pelvis (6) and thorax (7)
  masked out (weight 0).
* ``PCKh@0.1``: the same weighted mean at threshold ``np.arange(0, 0.51, 0.01)[10]`` (= 0.1), whose per-joint values
  the original stores in a ``float32`` array first (reproduced). Early mmpose and HRNet took row 11 (0.11) by mistake;
  mmpose fixed it (PR #516 / #773) before ViTPose forked, and ViTPose uses row 10.

Differences from the original, all deliberate:

* Ground-truth joints and labels come from the JSON (``joints``, ``joints_vis > 0``), not from ``pos_gt_src`` /
  ``jnt_missing`` of the ``.mat`` file; for the official ``mpii_val.json`` / ``mpii_gt_val.mat`` pair these describe
  the same annotations. Only the head boxes are read from the ``.mat`` file.
* Head sizes may also come from a ``headbox`` field of each entry, or from a fallback (see :func:`load_mpii`); the
  fallback is not the official normaliser.
* A joint that no evaluated person has labelled gives ``NaN`` for its per-joint value (the original divides by zero)
  and is left out of the means instead of turning them into ``NaN``. Whenever the original's result is defined, the
  numbers are the same.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from vitpose.datasets import get_dataset_info
from vitpose.errors import AnnotationError, MissingDependencyError, VitPoseError

__all__ = [
    "MPII_JOINT_NAMES",
    "PCKH_GROUPS",
    "SC_BIAS",
    "MpiiAnnotationError",
    "MpiiSample",
    "format_pckh_table",
    "load_mpii",
    "load_mpii_headboxes",
    "mpii_to_coco",
    "pckh",
    "pckh_per_joint",
]

NUM_JOINTS = 16
SC_BIAS = 0.6
"""Head size = SC_BIAS x the diagonal of the head box (the original's constant)."""
PIXEL_STD = 200.0
PADDING = 1.25
CENTER_SHIFT = 15.0
MASKED_JOINTS = (6, 7)
"""pelvis and thorax: excluded from the PCKh means, as the original (``mask[6:8] = True``)."""
UPPER_NECK, HEAD_TOP = 8, 9
PCKH_AT_01 = float(np.arange(0, 0.5 + 0.01, 0.01)[10])

MPII_JOINT_NAMES: tuple[str, ...] = get_dataset_info("mpii").keypoint_names
"""Joint order of MPII (the same as ``get_dataset_info("mpii").keypoint_names``)."""

PCKH_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (9,),
    "Shoulder": (13, 12),
    "Elbow": (14, 11),
    "Wrist": (15, 10),
    "Hip": (3, 2),
    "Knee": (4, 1),
    "Ankle": (5, 0),
}
"""Reported groups: head_top alone, the others the plain mean of (left, right)."""

HEAD_SOURCES = ("headbox", "mat", "neck_head_top")

_JSON_FIELDS = "image, joints, joints_vis, center, scale"


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


def load_mpii_headboxes(path: str | Path) -> np.ndarray:
    """Head sizes from the official ``mpii_gt_val.mat``.

    The file's ``headboxes_src`` has shape ``(2, 2, N)``: corner (top-left, bottom-right) x coordinate (x, y) x
    person, in the order of ``mpii_val.json``. As the original: ``0.6 * ||headboxes_src[1] - headboxes_src[0]||``.

    Args:
        path: the ``.mat`` file (MATLAB v5, as distributed; read with ``scipy.io.loadmat``).

    Returns:
        ``(N,)`` float64 head sizes in pixels.

    Raises:
        ImportError: scipy is not installed.
        FileNotFoundError: no such file.
        MpiiAnnotationError: unreadable file, no ``headboxes_src``, a wrong shape or a non-positive box.
    """
    path = Path(path)
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover - scipy is installed in the test environment
        raise MissingDependencyError(
            f"reading head boxes from {path} needs scipy (pip install scipy); alternatively give each JSON entry a "
            "'headbox' field [[x1, y1], [x2, y2]]"
        ) from exc
    if not path.is_file():
        raise FileNotFoundError(
            f"head-box file not found: {path} (the official MPII validation file is mpii_gt_val.mat)"
        )
    try:
        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError, NotImplementedError (v7.3) or others on a bad file
        raise _fail(
            path, None, None, f"cannot be read as a MATLAB v5 file ({exc})", "pass the official mpii_gt_val.mat"
        ) from exc
    if "headboxes_src" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise _fail(path, None, "headboxes_src", f"missing (the file has {keys})", "pass the official mpii_gt_val.mat")
    boxes = np.asarray(mat["headboxes_src"], dtype=np.float64)
    if boxes.ndim == 2 and boxes.shape == (2, 2):
        boxes = boxes[..., None]  # savemat/loadmat squeeze nothing, but a single box may be stored as (2, 2)
    if boxes.ndim != 3 or boxes.shape[:2] != (2, 2):
        raise _fail(
            path,
            None,
            "headboxes_src",
            f"has shape {boxes.shape}, expected (2, 2, N) (corner x (x, y) x person)",
            "pass the official mpii_gt_val.mat",
        )
    sizes = np.linalg.norm(boxes[1] - boxes[0], axis=0) * SC_BIAS
    bad = ~np.isfinite(sizes) | (sizes <= 0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise _fail(
            path,
            i,
            "headboxes_src",
            f"head box {boxes[:, :, i].tolist()} has no positive size",
            "fix the box or pass the official mpii_gt_val.mat",
        )
    return sizes


def _check_mat_positions(mat_path: Path, json_path: Path, samples: list[MpiiSample]) -> None:
    """Warn when the ``.mat`` ground truth (``pos_gt_src``, 1-based) disagrees with the JSON joints: the entries are
    matched by order, so a mismatch means the files do not belong together."""
    try:
        from scipy.io import loadmat

        pos = loadmat(str(mat_path), variable_names=["pos_gt_src"]).get("pos_gt_src")
    except Exception:  # best effort: load_mpii_headboxes has validated the file
        return
    if pos is None:
        return
    pos = np.asarray(pos, dtype=np.float64)
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
                stacklevel=3,
            )
            return


def load_mpii(path: str | Path, headboxes: str | Path | None = None) -> list[MpiiSample]:
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
        headboxes: optional path to ``mpii_gt_val.mat`` (needs scipy).

    Returns:
        One :class:`MpiiSample` per entry, in file order.

    Raises:
        FileNotFoundError: ``path`` or ``headboxes`` does not exist.
        MpiiAnnotationError: malformed content; the message names the file, the entry index and the field.
        ImportError: ``headboxes`` given but scipy is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MPII annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fail(
            path, None, None, f"is not valid JSON ({exc})", "pass an MPII annotation file such as mpii_val.json"
        ) from exc
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
        sizes = load_mpii_headboxes(headboxes)
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
        _check_mat_positions(Path(headboxes), path, samples)

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


def _parse_entry(path: Path, i: int, entry: Any) -> MpiiSample:
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


def _joint_count_error(path: Path, i: int, count: int) -> MpiiAnnotationError:
    problem = f"has {count} joints, MPII has 16"
    if count == 17:
        return _fail(path, i, "joints", problem + ": is it a COCO file? pass --dataset coco", "or fix the entry")
    return _fail(path, i, "joints", problem, "fix the entry (MPII joint order: r_ankle ... l_wrist)")


# ------------------------------------------------------------------------------------------------------------ metric


def _normalised_errors(predictions: ArrayLike, samples: Sequence[MpiiSample]) -> tuple[np.ndarray, np.ndarray, int]:
    """(N', 16) ``||pred - gt|| / head_size`` and (N', 16) labelled mask of the samples with a head size, and the
    number of samples left out for want of one."""
    pred = np.asarray(predictions, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[1] != NUM_JOINTS or pred.shape[2] not in (2, 3):
        raise VitPoseError(f"predictions must have shape (N, 16, 2) (or (N, 16, 3) with scores), got {pred.shape}")
    if pred.shape[0] != len(samples):
        raise VitPoseError(f"{pred.shape[0]} predictions for {len(samples)} samples: pass one (16, 2) array per sample")
    keep = [i for i, s in enumerate(samples) if s.head_size is not None]
    excluded = len(samples) - len(keep)
    if not keep:
        return np.zeros((0, NUM_JOINTS)), np.zeros((0, NUM_JOINTS), dtype=bool), excluded
    gt = np.stack([samples[i].joints for i in keep])
    visible = np.stack([np.asarray(samples[i].visible, dtype=bool) for i in keep])
    head = np.array([samples[i].head_size for i in keep], dtype=np.float64)
    err = np.linalg.norm(pred[keep, :, :2] - gt, axis=-1) / head[:, None]
    return err, visible, excluded


def _per_joint(err: np.ndarray, visible: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    counts = visible.sum(axis=0)
    hits = ((err <= threshold) & visible).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pck = 100.0 * hits / counts
    return np.where(counts > 0, pck, np.nan), counts


def pckh_per_joint(
    predictions: ArrayLike, samples: Sequence[MpiiSample], threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint PCKh.

    Args:
        predictions: ``(N, 16, 2)`` predicted ``(x, y)`` in 0-based image pixels, one per sample (``(N, 16, 3)`` with
            scores is accepted; the scores are ignored, as in the original). NaN counts as a miss.
        samples: the N :class:`MpiiSample` (from :func:`load_mpii`); those without a head size are left out.
        threshold: fraction of the head size (0.5 for PCKh@0.5).

    Returns:
        ``pck`` ``(16,)`` float64 percentages (NaN for a joint no evaluated sample has labelled) and ``counts``
        ``(16,)`` int, the number of labelled joints evaluated.
    """
    err, visible, _ = _normalised_errors(predictions, samples)
    return _per_joint(err, visible, threshold)


def _weighted_mean(pck: np.ndarray, counts: np.ndarray) -> float:
    """The original's ``np.sum(PCKh * jnt_ratio)`` with pelvis/thorax masked (and empty joints at weight 0)."""
    weights = counts.astype(np.float64)
    weights[list(MASKED_JOINTS)] = 0.0
    weights[counts == 0] = 0.0
    total = np.sum(weights)
    if total == 0:
        return float("nan")
    ratio = weights / total
    return float(np.sum(np.where(weights > 0, pck * ratio, 0.0)))


def pckh(predictions: ArrayLike, samples: Sequence[MpiiSample], threshold: float = 0.5) -> dict[str, float]:
    """PCKh as the original ViTPose / mmpose 0.x ``TopDownMpiiDataset.evaluate`` reports it.

    Args:
        predictions: ``(N, 16, 2)`` predicted ``(x, y)`` in 0-based image pixels, in the order of ``samples``
            (``(N, 16, 3)`` accepted, scores ignored). NaN counts as a miss.
        samples: the N :class:`MpiiSample` of :func:`load_mpii`. Samples with ``head_size=None`` are left out
            (a ``UserWarning`` and ``num_excluded`` report them).
        threshold: fraction of the head size for the main numbers (0.5, the original's).

    Returns:
        Percentages (0-100), in this order: ``Head`` (head_top), ``Shoulder``, ``Elbow``, ``Wrist``, ``Hip``,
        ``Knee``, ``Ankle`` (each the plain mean of left and right), ``PCKh`` (mean over the labelled joints, pelvis and
        thorax excluded, i.e. per-joint values weighted by their counts), ``PCKh@0.1`` (the same at threshold 0.1,
        whatever ``threshold`` is); then ``PCKh_<joint name>`` for the 16 joints (pelvis and thorax included, for
        information); then the counts ``num_samples`` (evaluated) and ``num_excluded`` (no head size).
    """
    err, visible, excluded = _normalised_errors(predictions, samples)
    if excluded:
        warnings.warn(
            f"{excluded} of {len(samples)} samples have no head size (no head box and no labelled "
            "upper_neck/head_top) and are left out of PCKh",
            UserWarning,
            stacklevel=2,
        )
    pck, counts = _per_joint(err, visible, threshold)
    pck01, _ = _per_joint(err, visible, PCKH_AT_01)
    pck01 = pck01.astype(np.float32).astype(np.float64)  # the original keeps its pckAll table in float32

    out: dict[str, float] = {}
    for name, joints in PCKH_GROUPS.items():
        out[name] = float(pck[joints[0]]) if len(joints) == 1 else float(0.5 * (pck[joints[0]] + pck[joints[1]]))
    out["PCKh"] = _weighted_mean(pck, counts)
    out["PCKh@0.1"] = _weighted_mean(pck01, counts)
    for j, name in enumerate(MPII_JOINT_NAMES):
        out[f"PCKh_{name}"] = float(pck[j])
    out["num_samples"] = int(err.shape[0])
    out["num_excluded"] = int(excluded)
    return out


def format_pckh_table(metrics: Mapping[str, float]) -> str:
    """A fixed-width text table of :func:`pckh`'s result: the reported groups and means, then the per-joint values.

    Missing keys are skipped; NaN prints as ``n/a``.
    """

    def fmt(value: float) -> str:
        return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"

    summary = [k for k in (*PCKH_GROUPS, "PCKh", "PCKh@0.1") if k in metrics]
    width = 10
    lines = []
    if summary:
        lines.append("".join(f"{k:>{width}}" for k in summary))
        lines.append("".join(f"{fmt(metrics[k]):>{width}}" for k in summary))
    joints = [(name, metrics[f"PCKh_{name}"]) for name in MPII_JOINT_NAMES if f"PCKh_{name}" in metrics]
    if joints:
        if lines:
            lines.append("")
        for name, value in joints:
            note = "  (not in the mean)" if MPII_JOINT_NAMES.index(name) in MASKED_JOINTS else ""
            lines.append(f"  {name:<16}{fmt(value):>8}{note}")
    if "num_samples" in metrics:
        lines.append("")
        line = f"samples evaluated: {int(metrics['num_samples'])}"
        if metrics.get("num_excluded"):
            line += f", left out (no head size): {int(metrics['num_excluded'])}"
        lines.append(line)
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------- conversion


def mpii_to_coco(
    samples: Sequence[MpiiSample], image_sizes: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, Any]:
    """COCO-style ``{"images", "annotations", "categories"}`` dict of MPII samples, e.g. for drawing.

    Images get ids 1, 2, ... in order of first appearance (several persons may share an image); annotation ``i + 1`` is
    sample ``i``. ``keypoints`` are 48 numbers ``x, y, v`` in 0-based pixels, ``v = 2`` for a labelled joint and
    ``0, 0, 0`` otherwise (COCO's convention); ``bbox`` is the crop extent ``[cx - w/2, cy - h/2, w, h]``.

    Args:
        samples: from :func:`load_mpii`.
        image_sizes: optional ``{file name: (width, height)}`` for the images' ``width`` / ``height``.

    Returns:
        The dict, JSON-serialisable.
    """
    info = get_dataset_info("mpii")
    images: dict[str, int] = {}
    image_list: list[dict[str, Any]] = []
    annotations = []
    for i, sample in enumerate(samples):
        if sample.image not in images:
            images[sample.image] = len(images) + 1
            record: dict[str, Any] = {"id": images[sample.image], "file_name": sample.image}
            if image_sizes is not None and sample.image in image_sizes:
                w, h = image_sizes[sample.image]
                record["width"], record["height"] = int(w), int(h)
            image_list.append(record)
        keypoints = []
        for (x, y), v in zip(sample.joints, sample.visible, strict=True):
            keypoints += [float(x), float(y), 2] if v else [0.0, 0.0, 0]
        w, h = (float(v) for v in sample.scale)
        cx, cy = (float(v) for v in sample.center)
        annotations.append(
            {
                "id": i + 1,
                "image_id": images[sample.image],
                "category_id": 1,
                "keypoints": keypoints,
                "num_keypoints": int(np.sum(sample.visible)),
                "bbox": [cx - w / 2, cy - h / 2, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
        )
    categories = [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(info.keypoint_names),
            "skeleton": [[a + 1, b + 1] for a, b in info.skeleton],
        }
    ]
    return {"images": image_list, "annotations": annotations, "categories": categories}
