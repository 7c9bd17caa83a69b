"""Draw poses (skeleton links, keypoints and boxes) on an RGB image with OpenCV.

Colours come from the data set's metadata (:class:`vitpose.datasets.DatasetInfo`, RGB, the mmpose palettes) and are
drawn into an RGB array, so no channel swap happens anywhere. Everything is anti-aliased (``cv2.LINE_AA``) and drawn
at 1/16-pixel precision (``shift=4``), so sub-pixel keypoints land where they are.

Default sizes scale with the image: ``radius = max(1, round(max(H, W) / 160))`` and
``thickness = max(1, round(max(H, W) / 320))`` (4 and 2 for a 640-pixel COCO image, mmpose's default radius). Data
sets with many small parts (COCO-WholeBody's face and hands) draw those points with half the radius.

Drawing order: boxes, then per instance its links and then its points, so points sit on top of their links.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from numpy.typing import ArrayLike

from vitpose.datasets.metadata import DatasetInfo, get_dataset_info
from vitpose.errors import VitPoseError

__all__ = ["default_radius", "default_thickness", "draw_poses"]

Color = tuple[int, int, int]

_SHIFT = 4  # fractional bits of the coordinates passed to cv2
_ONE = 1 << _SHIFT
_SMALL_PARTS = ("face", "lefthand", "righthand")  # parts drawn with half the radius
_FALLBACK_KEYPOINT_COLOR: Color = (255, 128, 0)  # custom layouts without colours of their own (orange)
_DEFAULT_BOX_COLOR: Color = (0, 255, 0)


def default_radius(height: int, width: int) -> int:
    """Keypoint radius for an image of ``height`` x ``width`` pixels: ``max(1, round(max(H, W) / 160))``."""
    return max(1, round(max(height, width) / 160))


def default_thickness(height: int, width: int) -> int:
    """Link and box thickness for an image of ``height`` x ``width`` pixels: ``max(1, round(max(H, W) / 320))``."""
    return max(1, round(max(height, width) / 320))


def _to_rgb(image: Any) -> np.ndarray:
    """A writable ``(H, W, 3)`` uint8 RGB copy of an RGB array, a grey ``(H, W)`` array or a PIL image."""
    if hasattr(image, "convert") and hasattr(image, "mode") and not isinstance(image, np.ndarray):
        image = image.convert("RGB")  # PIL (any mode) -> RGB
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise VitPoseError(f"image must be uint8 RGB, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise VitPoseError(f"image must have shape (H, W, 3) (RGB) or (H, W), got {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array).copy()


def _colors(name: str, value: Any, count: int) -> list[Color]:
    """One RGB colour, or ``count`` of them, as a list of ``count`` int tuples."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape == (3,):
        array = np.broadcast_to(array, (count, 3))
    if array.shape != (count, 3):
        raise VitPoseError(f"{name} must be one RGB colour (3,) or one per item ({count}, 3), got {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0) or np.any(array > 255):
        raise VitPoseError(f"{name} must hold values in [0, 255]")
    return [(int(r), int(g), int(b)) for r, g, b in np.rint(array)]


def _fixed(points: np.ndarray) -> list[list[int]]:
    """(M, 2) float coordinates -> cv2's fixed-point ints (`_SHIFT` fractional bits), rounded half to even."""
    return np.rint(np.asarray(points, np.float64).reshape(-1, 2) * _ONE).astype(np.int64).tolist()


def _clip_segments(
    p: np.ndarray, q: np.ndarray, lo: tuple[float, float], hi: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip the segments p[i]-q[i] ((M, 2) each) to the box [lo, hi] (Liang-Barsky, all at once).

    Returns the clipped ends (M, 2) and (M,) whether each segment meets the box. Keeps the coordinates handed to
    cv2 small (it takes int32 fixed-point values) without bending the lines.
    """
    d = q - p
    t0 = np.zeros(len(p))
    t1 = np.ones(len(p))
    keep = np.ones(len(p), bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(2):
            for num, den in ((p[:, axis] - lo[axis], -d[:, axis]), (hi[axis] - p[:, axis], d[:, axis])):
                flat = den == 0
                keep &= ~(flat & (num < 0))
                t = num / np.where(flat, 1.0, den)
                t0 = np.where(~flat & (den < 0), np.maximum(t0, t), t0)
                t1 = np.where(~flat & (den > 0), np.minimum(t1, t), t1)
    keep &= t0 <= t1
    return p + t0[:, None] * d, p + t1[:, None] * d, keep


def draw_poses(
    image: Any,
    keypoints: ArrayLike,
    keypoint_scores: ArrayLike | None,
    dataset: str | int | DatasetInfo = "coco",
    kpt_thr: float = 0.3,
    boxes: ArrayLike | None = None,
    radius: int | None = None,
    thickness: int | None = None,
    skeleton: Sequence[tuple[int, int]] | np.ndarray | None = None,
    keypoint_colors: Sequence[Sequence[int]] | np.ndarray | None = None,
    link_colors: Sequence[Sequence[int]] | np.ndarray | None = None,
    box_color: Sequence[int] = _DEFAULT_BOX_COLOR,
) -> np.ndarray:
    """Draw skeletons, keypoints and (optionally) boxes; returns a new image, the input is left unchanged.

    A keypoint is drawn when its score is ``> kpt_thr`` and its coordinates are finite; a link when both of its ends
    qualify.

    Args:
        image: ``(H, W, 3)`` uint8 RGB array (``(H, W)`` grey is accepted too), or a PIL image (converted to RGB).
        keypoints: ``(N, K, 2)`` keypoint xy in image pixels (``(K, 2)`` for one instance).
        keypoint_scores: ``(N, K)`` keypoint scores (``(K,)`` for one instance); None draws every finite keypoint.
        dataset: Data-set name, ViTPose++ index or :class:`DatasetInfo` giving the skeleton and the palette. K must be
            its keypoint count unless ``skeleton`` is given.
        kpt_thr: Score threshold (strict).
        boxes: ``(N, 4)`` COCO ``[x, y, width, height]`` boxes to draw, or None.
        radius: Keypoint radius in pixels; default :func:`default_radius` (face and hand points of COCO-WholeBody get
            half of it).
        thickness: Link and box thickness in pixels; default :func:`default_thickness`.
        skeleton: ``(L, 2)`` 0-based keypoint index pairs, overriding the data set's skeleton (for custom layouts).
        keypoint_colors: One RGB colour ``(3,)`` or one per keypoint ``(K, 3)``; default the data set's palette when K
            matches it, else orange.
        link_colors: One RGB colour ``(3,)`` or one per link ``(L, 3)``; default the data set's link palette, or for a
            custom ``skeleton`` the colour of each link's first keypoint.
        box_color: RGB colour of the boxes.

    Returns:
        ``(H, W, 3)`` uint8 RGB image with the poses drawn.

    Raises:
        ValueError: On inconsistent shapes, a K that does not match the data set (without ``skeleton``), skeleton
            indices out of range, or invalid colours.
    """
    canvas = _to_rgb(image)
    height, width = canvas.shape[:2]

    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.ndim == 2:
        kpts = kpts[None]
    if kpts.ndim != 3 or kpts.shape[-1] != 2:
        raise VitPoseError(f"keypoints must have shape (N, K, 2) or (K, 2), got {np.shape(keypoints)}")
    n, k = kpts.shape[:2]
    if keypoint_scores is None:
        scores = np.full((n, k), np.inf)
    else:
        scores = np.asarray(keypoint_scores, dtype=np.float64)
        if scores.ndim == 1 and n == 1:
            scores = scores[None]
        if scores.shape != (n, k):
            raise VitPoseError(f"keypoint_scores must have shape (N, K) = ({n}, {k}), got {np.shape(keypoint_scores)}")

    info = get_dataset_info(dataset)
    layout_matches = k == info.num_keypoints
    if skeleton is None:
        if not layout_matches:
            raise VitPoseError(
                f"keypoints have K = {k} but data set {info.name!r} has {info.num_keypoints} keypoints; "
                "pick the matching dataset or pass skeleton= for a custom layout"
            )
        links = np.asarray(info.skeleton, dtype=np.int64).reshape(-1, 2)
    else:
        links = np.asarray(skeleton)
        if links.size == 0:
            links = np.zeros((0, 2), dtype=np.int64)
        if links.ndim != 2 or links.shape[1] != 2:
            raise VitPoseError(f"skeleton must have shape (L, 2), got {links.shape}")
        if not np.issubdtype(links.dtype, np.integer):
            raise VitPoseError("skeleton must hold integer keypoint indices")
        links = links.astype(np.int64)
        if links.size and (links.min() < 0 or links.max() >= k):
            raise VitPoseError(f"skeleton indices must lie in [0, {k}), got range [{links.min()}, {links.max()}]")

    if keypoint_colors is not None:
        point_colors = _colors("keypoint_colors", keypoint_colors, k)
    elif layout_matches:
        point_colors = list(info.keypoint_colors)
    else:
        point_colors = [_FALLBACK_KEYPOINT_COLOR] * k
    if link_colors is not None:
        line_colors = _colors("link_colors", link_colors, len(links))
    elif skeleton is None:
        line_colors = list(info.link_colors)
    else:
        line_colors = [point_colors[a] for a, _ in links]

    box_array = None
    if boxes is not None:
        box_array = np.asarray(boxes, dtype=np.float64)
        if box_array.ndim == 1 and n == 1:
            box_array = box_array[None]
        if box_array.shape != (n, 4):
            raise VitPoseError(f"boxes must have shape (N, 4) = ({n}, 4) COCO xywh, got {np.shape(boxes)}")
    (box_rgb,) = _colors("box_color", box_color, 1)

    radius = default_radius(height, width) if radius is None else int(radius)
    thickness = default_thickness(height, width) if thickness is None else int(thickness)
    if radius < 1 or thickness < 1:
        raise VitPoseError(f"radius and thickness must be >= 1, got {radius} and {thickness}")
    radii = np.full(k, radius, dtype=np.int64)
    if layout_matches and info.parts:
        for part in _SMALL_PARTS:
            if part in info.parts:
                start, stop = info.parts[part]
                radii[start:stop] = max(1, round(radius / 2))

    # Drawing happens on a box a little larger than the image, so clipped strokes still reach the border.
    margin = float(thickness + max(radius, 1) + 2)
    lo, hi = (-margin, -margin), (width - 1 + margin, height - 1 + margin)
    visible = (scores > kpt_thr) & np.all(np.isfinite(kpts), axis=-1)

    if box_array is not None:
        for x, y, w, h in box_array:
            if not np.all(np.isfinite((x, y, w, h))):
                continue
            corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
            _draw_segments(canvas, corners, np.roll(corners, -1, axis=0), [box_rgb] * 4, thickness, lo, hi)

    # Person by person, in the order of drawing one segment at a time: the person's visible links, clipped all at
    # once (numpy), then its keypoints.
    both = visible[:, links[:, 0]] & visible[:, links[:, 1]] if len(links) else np.zeros((n, 0), bool)
    for person in range(n):
        shown = np.flatnonzero(both[person])
        if len(shown):
            ends = kpts[person][links[shown]]  # (L', 2 ends, 2)
            _draw_segments(canvas, ends[:, 0], ends[:, 1], [line_colors[i] for i in shown], thickness, lo, hi)
        points = np.flatnonzero(visible[person])
        if not len(points):
            continue
        xy = kpts[person, points]
        r = radii[points]
        inside = (-r <= xy[:, 0]) & (xy[:, 0] <= width - 1 + r) & (-r <= xy[:, 1]) & (xy[:, 1] <= height - 1 + r)
        for j, center in zip(points[inside].tolist(), _fixed(xy[inside]), strict=True):
            cv2.circle(canvas, center, int(radii[j]) * _ONE, point_colors[j], -1, cv2.LINE_AA, _SHIFT)
    return canvas


def _draw_segments(
    canvas: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    colors: Sequence[Color],
    thickness: int,
    lo: tuple[float, float],
    hi: tuple[float, float],
) -> None:
    """Draw the segments p[i]-q[i] ((M, 2) each) in order, each clipped to [lo, hi]."""
    start, stop, keep = _clip_segments(np.asarray(p, np.float64), np.asarray(q, np.float64), lo, hi)
    kept = np.flatnonzero(keep)
    for i, a, b in zip(kept.tolist(), _fixed(start[kept]), _fixed(stop[kept]), strict=True):
        cv2.line(canvas, a, b, colors[i], thickness, cv2.LINE_AA, _SHIFT)
