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

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from vitpose.datasets import get_dataset_info
from vitpose.datasets.mpii import (
    MPII_JOINT_NAMES,
    SC_BIAS,
    MpiiAnnotationError,
    MpiiSample,
    _fail,
)
from vitpose.datasets.mpii import load_mpii as _load_mpii
from vitpose.deprecation import renamed_kwargs
from vitpose.errors import MissingDependencyError, VitPoseError

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
MASKED_JOINTS = (6, 7)
"""pelvis and thorax: excluded from the PCKh means, as the original (``mask[6:8] = True``)."""
PCKH_AT_01 = float(np.arange(0, 0.5 + 0.01, 0.01)[10])

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


# ----------------------------------------------------------------------------------------------------------- loading
# The reader lives in vitpose.datasets.mpii (training reads the same files); the head boxes of the official
# mpii_gt_val.mat need scipy, so they are read here.


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


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Head sizes and (best effort) the 1-based ground-truth joints ``pos_gt_src`` of ``mpii_gt_val.mat``."""
    sizes = load_mpii_headboxes(path)
    try:
        from scipy.io import loadmat

        positions = loadmat(str(path), variable_names=["pos_gt_src"]).get("pos_gt_src")
    except Exception:  # best effort: load_mpii_headboxes has validated the file
        positions = None
    return sizes, positions


def load_mpii(path: str | Path, headboxes: str | Path | None = None) -> list[MpiiSample]:
    """Load an MPII annotation file (mmpose 0.x JSON format) with the original's centre/scale arithmetic: the
    reading of `vitpose.datasets.mpii.load_mpii` (whose docstring says where each head size comes from), plus the
    official ``mpii_gt_val.mat`` head boxes (``headboxes``; reading it needs scipy, which the data-set layer does
    not import).

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
    return _load_mpii(path, headboxes, read_headboxes=_read_mat)


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


@renamed_kwargs(threshold="pckh_thr")
def pckh_per_joint(
    predictions: ArrayLike, samples: Sequence[MpiiSample], pckh_thr: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint PCKh.

    Args:
        predictions: ``(N, 16, 2)`` predicted ``(x, y)`` in 0-based image pixels, one per sample (``(N, 16, 3)`` with
            scores is accepted; the scores are ignored, as in the original). NaN counts as a miss.
        samples: the N :class:`MpiiSample` (from :func:`load_mpii`); those without a head size are left out.
        pckh_thr: fraction of the head size (0.5 for PCKh@0.5).

    Returns:
        ``pck`` ``(16,)`` float64 percentages (NaN for a joint no evaluated sample has labelled) and ``counts``
        ``(16,)`` int, the number of labelled joints evaluated.
    """
    err, visible, _ = _normalised_errors(predictions, samples)
    return _per_joint(err, visible, pckh_thr)


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


@renamed_kwargs(threshold="pckh_thr")
def pckh(predictions: ArrayLike, samples: Sequence[MpiiSample], pckh_thr: float = 0.5) -> dict[str, float]:
    """PCKh as the original ViTPose / mmpose 0.x ``TopDownMpiiDataset.evaluate`` reports it.

    Args:
        predictions: ``(N, 16, 2)`` predicted ``(x, y)`` in 0-based image pixels, in the order of ``samples``
            (``(N, 16, 3)`` accepted, scores ignored). NaN counts as a miss.
        samples: the N :class:`MpiiSample` of :func:`load_mpii`. Samples with ``head_size=None`` are left out
            (a ``UserWarning`` and ``num_excluded`` report them).
        pckh_thr: fraction of the head size for the main numbers (0.5, the original's).

    Returns:
        Percentages (0-100), in this order: ``Head`` (head_top), ``Shoulder``, ``Elbow``, ``Wrist``, ``Hip``,
        ``Knee``, ``Ankle`` (each the plain mean of left and right), ``PCKh`` (mean over the labelled joints, pelvis and
        thorax excluded, i.e. per-joint values weighted by their counts), ``PCKh@0.1`` (the same at threshold 0.1,
        whatever ``pckh_thr`` is); then ``PCKh_<joint name>`` for the 16 joints (pelvis and thorax included, for
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
    pck, counts = _per_joint(err, visible, pckh_thr)
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
