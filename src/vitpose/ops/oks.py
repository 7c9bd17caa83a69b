"""Object keypoint similarity (OKS) and greedy OKS non-maximum suppression, vectorised.

Semantics follow the original ViTPose evaluation (mmpose 0.x ``mmpose/core/post_processing/nms.py``, functions
``oks_iou`` and ``oks_nms``). For instances ``g`` and ``d`` with areas ``a_g``, ``a_d`` and per-keypoint sigmas::

    e_k  = (dx_k ** 2 + dy_k ** 2) / (2 * sigma_k) ** 2 / ((a_g + a_d) / 2 + np.spacing(1)) / 2
    oks  = mean_k exp(-e_k)          (over the kept keypoints; 0 when none is kept)

The visibility test of the original, and what it really computes
-----------------------------------------------------------------
With ``vis_thr`` set, the original selects keypoints with ``ind = list(vg > vis_thr) and list(vd > vis_thr)``. That
is Python's ``and`` of two lists, which returns the second list whenever the first is non-empty (always, for K > 0),
so the mask is ``vd > vis_thr``: only the scores of ``d`` count (``d`` is the second instance, the candidate being
tested for suppression in ``oks_nms``), and ``g``'s scores are ignored. numpy then reads that list of ``np.bool_`` as
a boolean mask. That is the default here (``require_both_visible=False``); ``require_both_visible=True`` gives the
evidently intended "visible in both" test. With K = 0 the original's first list is empty, so it returns ``[]`` and
the OKS is 0, as here. The COCO top-down evaluation of the original calls ``oks_nms`` without ``vis_thr``, so the
quirk does not touch the papers' COCO numbers; it matters only to callers that pass ``vis_thr``.

Two more details of the original kept by :func:`oks_nms`: the OKS values land in a ``float32`` array and are compared
with ``thr`` in ``float32`` (numpy casts the Python float threshold to the array's type), and an instance is kept when
its OKS with the current best is ``<= thr`` (only strictly greater OKS suppresses). NaN OKS (non-finite keypoints)
compares false, so such an instance is suppressed, as in the original.

:func:`oks_matrix` computes in ``float64`` from the given coordinates (the original subtracts ``float32`` keypoints in
``float32`` before promoting; that differs by float32 rounding only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from vitpose.datasets.metadata import DatasetInfo, get_dataset_info
from vitpose.errors import VitPoseError
from vitpose.ops.geometry import box_to_center_scale

__all__ = ["oks_matrix", "oks_nms", "pose_nms"]

# Upper bound on the (rows x M x K) work array of one chunk of oks_matrix, to keep memory flat for big inputs.
_CHUNK_ELEMENTS = 1 << 22


def _sigmas(sigmas: ArrayLike | str | DatasetInfo) -> np.ndarray:
    if isinstance(sigmas, (str, DatasetInfo)):
        sigmas = get_dataset_info(sigmas).sigmas
    out = np.asarray(sigmas, dtype=np.float64)
    if out.ndim != 1:
        raise VitPoseError(f"sigmas must have shape (K,), got {out.shape}")
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise VitPoseError("sigmas must be finite and positive")
    return out


def _keypoints(name: str, value: Any) -> np.ndarray:
    out = np.asarray(value, dtype=np.float64)
    if out.ndim != 3 or out.shape[-1] != 2:
        hint = " (pass keypoints[..., :2] for (N, K, 3) arrays)" if out.ndim == 3 and out.shape[-1] == 3 else ""
        raise VitPoseError(f"{name} must have shape (N, K, 2), got {out.shape}{hint}")
    return out


def _vector(name: str, value: Any, n: int, label: str = "N") -> np.ndarray:
    out = np.asarray(value, dtype=np.float64)
    if out.shape != (n,):
        raise VitPoseError(f"{name} must have shape ({label},) = ({n},), got {out.shape}")
    return out


def _scores(name: str, value: Any, n: int, k: int, label: str = "N") -> np.ndarray:
    out = np.asarray(value, dtype=np.float64)
    if out.shape != (n, k):
        raise VitPoseError(f"{name} must have shape ({label}, K) = ({n}, {k}), got {out.shape}")
    return out


def oks_matrix(
    keypoints_a: ArrayLike,
    keypoints_b: ArrayLike,
    areas_a: ArrayLike,
    areas_b: ArrayLike,
    sigmas: ArrayLike | str | DatasetInfo,
    scores_a: ArrayLike | None = None,
    scores_b: ArrayLike | None = None,
    vis_thr: float | None = None,
    require_both_visible: bool = False,
) -> np.ndarray:
    """OKS between every instance of ``a`` and every instance of ``b`` (``a`` plays ``g``, ``b`` plays ``d``).

    Args:
        keypoints_a: ``(N, K, 2)`` keypoint xy of the first set.
        keypoints_b: ``(M, K, 2)`` keypoint xy of the second set.
        areas_a: ``(N,)`` instance areas (non-negative).
        areas_b: ``(M,)`` instance areas (non-negative).
        sigmas: ``(K,)`` per-keypoint OKS sigmas, or a data-set name / :class:`DatasetInfo` to take them from.
        scores_a: ``(N, K)`` keypoint scores of ``a``; read only when ``vis_thr`` is set and
            ``require_both_visible`` is true.
        scores_b: ``(M, K)`` keypoint scores of ``b``; required when ``vis_thr`` is set.
        vis_thr: If set, only keypoints whose score is ``> vis_thr`` count. As in the original ``oks_iou`` that means
            the scores of ``b`` only (see the module docstring), unless ``require_both_visible``.
        require_both_visible: With ``vis_thr``, count a keypoint only if it is above ``vis_thr`` in both instances
            (the intended behaviour, not the original's).

    Returns:
        ``(N, M)`` float64 OKS; 0 for a pair with no counted keypoint. Not symmetric when ``vis_thr`` is set and
        ``require_both_visible`` is false.

    Raises:
        ValueError: On inconsistent shapes, negative areas, invalid sigmas or missing scores.
    """
    a = _keypoints("keypoints_a", keypoints_a)
    b = _keypoints("keypoints_b", keypoints_b)
    n, k = a.shape[:2]
    m = b.shape[0]
    if b.shape[1] != k:
        raise VitPoseError(f"keypoints_a has K = {k} keypoints but keypoints_b has {b.shape[1]}")
    sig = _sigmas(sigmas)
    if sig.shape[0] != k:
        raise VitPoseError(f"sigmas has {sig.shape[0]} entries but the keypoints have K = {k}")
    area_a = _vector("areas_a", areas_a, n)
    area_b = _vector("areas_b", areas_b, m, "M")
    if np.any(area_a < 0) or np.any(area_b < 0):
        raise VitPoseError("areas must be non-negative")

    mask_a = mask_b = None
    if vis_thr is not None:
        if scores_b is None:
            raise VitPoseError("vis_thr needs scores_b (the original tests the visibility of the second instance)")
        mask_b = _scores("scores_b", scores_b, m, k, "M") > vis_thr
        if require_both_visible:
            if scores_a is None:
                raise VitPoseError("require_both_visible needs scores_a")
            mask_a = _scores("scores_a", scores_a, n, k) > vis_thr

    out = np.zeros((n, m), dtype=np.float64)
    if n == 0 or m == 0 or k == 0:
        return out
    variances = (sig * 2) ** 2
    rows = max(1, _CHUNK_ELEMENTS // (m * k))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        diff = a[start:stop, None] - b[None]  # (n', M, K, 2)
        d2 = diff[..., 0] ** 2 + diff[..., 1] ** 2
        mean_area = (area_a[start:stop, None] + area_b[None, :]) / 2 + np.spacing(1)  # (n', M)
        similarity = np.exp(-(d2 / variances / mean_area[..., None] / 2))
        if mask_b is None:
            out[start:stop] = similarity.sum(-1) / k
            continue
        mask = np.broadcast_to(mask_b[None], similarity.shape)
        if mask_a is not None:
            mask = mask & mask_a[start:stop, None]
        count = mask.sum(-1)
        total = np.where(mask, similarity, 0.0).sum(-1)
        np.divide(total, count, out=out[start:stop], where=count > 0)
    return out


def oks_nms(
    keypoints: ArrayLike,
    scores: ArrayLike,
    areas: ArrayLike,
    sigmas: ArrayLike | str | DatasetInfo,
    thr: float = 0.9,
    keypoint_scores: ArrayLike | None = None,
    vis_thr: float | None = None,
    require_both_visible: bool = False,
) -> np.ndarray:
    """Greedy OKS non-maximum suppression, as the original ``oks_nms``.

    Instances are visited by descending score (the order of ``np.argsort(scores)[::-1]``, ties included); the best
    remaining one is kept and every remaining instance whose OKS with it is ``> thr`` (compared in float32, as the
    original) is dropped; repeat until none remains.

    Args:
        keypoints: ``(N, K, 2)`` keypoint xy per instance.
        scores: ``(N,)`` instance scores.
        areas: ``(N,)`` instance areas (the original uses the padded box area, ``prod(scale * 200)``).
        sigmas: ``(K,)`` OKS sigmas, or a data-set name / :class:`DatasetInfo`.
        thr: OKS threshold; only an OKS strictly above it suppresses.
        keypoint_scores: ``(N, K)`` keypoint scores, required with ``vis_thr``.
        vis_thr: Keypoint score threshold for the OKS (see :func:`oks_matrix`: by default, as the original, only the
            scores of the candidate being tested count, not those of the kept instance).
        require_both_visible: Count only keypoints above ``vis_thr`` in both instances.

    Returns:
        ``(N',)`` int64 indices of the kept instances, in the order they are kept (descending score).

    Raises:
        ValueError: On inconsistent shapes, or ``vis_thr`` without ``keypoint_scores``.
    """
    kpts = _keypoints("keypoints", keypoints)
    n, k = kpts.shape[:2]
    score = np.asarray(scores)
    if score.shape != (n,):
        raise VitPoseError(f"scores must have shape (N,) = ({n},), got {score.shape}")
    if not (np.issubdtype(score.dtype, np.number) or score.dtype == np.bool_):
        raise VitPoseError(f"scores must be numeric, got dtype {score.dtype}")
    area = _vector("areas", areas, n)
    sig = _sigmas(sigmas)
    if sig.shape[0] != k:
        raise VitPoseError(f"sigmas has {sig.shape[0]} entries but the keypoints have K = {k}")
    kpt_scores = None
    if vis_thr is not None:
        if keypoint_scores is None:
            raise VitPoseError("vis_thr needs keypoint_scores")
        kpt_scores = _scores("keypoint_scores", keypoint_scores, n, k)
    if n == 0:
        return np.zeros(0, dtype=np.int64)

    thr32 = np.float32(thr)
    order = np.argsort(score)[::-1]
    keep: list[int] = []
    while order.size > 0:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        if rest.size == 0:
            break
        overlap = oks_matrix(
            kpts[best : best + 1],
            kpts[rest],
            area[best : best + 1],
            area[rest],
            sig,
            scores_a=None if kpt_scores is None else kpt_scores[best : best + 1],
            scores_b=None if kpt_scores is None else kpt_scores[rest],
            vis_thr=vis_thr,
            require_both_visible=require_both_visible,
        )[0]
        # The original stores OKS in a float32 array and compares it with thr in float32.
        order = rest[overlap.astype(np.float32) <= thr32]
    return np.asarray(keep, dtype=np.int64)


def pose_nms(
    keypoints: ArrayLike,
    scores: ArrayLike,
    sigmas: ArrayLike | str | DatasetInfo,
    thr: float,
    *,
    boxes: ArrayLike | None = None,
    scales: ArrayLike | None = None,
    input_size: tuple[int, int] = (192, 256),
    padding: float = 1.25,
) -> np.ndarray:
    """OKS-NMS over the poses of one image as the original top-down pipeline runs it: each instance's area is its
    padded crop region's (``scale_w * scale_h`` in pixels, the box grown to the input's aspect ratio and by
    `padding`), not its box's. The estimator, video and the evaluation all suppress through this function.

    Args:
        keypoints: ``(N, K, 2)``; scores: ``(N,)`` instance scores; sigmas: ``(K,)`` or a data set.
        boxes: ``(N, 4)`` COCO x, y, w, h crop boxes, or `scales`: ``(N, 2)`` their padded region sizes (pixels).
        input_size: network input ``(width, height)``; padding: box padding factor (both as the processor).

    Returns:
        ``(N',)`` int64 indices of the kept instances, in increasing order.
    """
    if scales is None:
        if boxes is None:
            raise VitPoseError("pose_nms needs boxes or scales")
        _, scales = box_to_center_scale(np.asarray(boxes), input_size=input_size, padding=padding)
    s = np.asarray(scales)
    areas = s[:, 0].astype(np.float64) * s[:, 1]  # the padded box, as the original
    return np.sort(oks_nms(keypoints, scores, areas, sigmas, thr))
