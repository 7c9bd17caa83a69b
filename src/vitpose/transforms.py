"""Geometry of the top-down pipeline: person box -> centre/scale -> UDP crop, and heatmap -> image coordinates.

Conventions used throughout the package:

* Sizes are ``(width, height)`` pairs (``input_size=(192, 256)``, ``heatmap_size=(48, 64)``), arrays are
  ``(..., H, W)``/``(H, W, C)`` as usual.
* ``scales`` are **in pixels** ``(w, h)``: the extent of the (aspect-corrected, padded) box in the image. The original
  ViTPose / mmpose 0.x code expresses the same quantity in units of 200 px ("pixel_std"), so
  ``scale_original = scales / 200`` and ``scales = scale_original * 200``.
* The crop uses the unbiased data processing (UDP, Huang et al., CVPR 2020) convention: pixel centres are samples,
  so a box of extent ``s`` is mapped onto ``W - 1`` pixel *intervals* of the crop (not ``W`` pixels) and the heatmap
  stride is ``(input_size - 1) / (heatmap_size - 1)``. This is what makes flipping and the heatmap <-> image
  transform exact without the classic half-pixel shifts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

__all__ = [
    "box_to_center_scale",
    "crop_boxes",
    "get_udp_warp_matrices",
    "get_udp_warp_matrix",
    "heatmap_to_image_coords",
]

_BOX_RULE = "boxes must be COCO [x, y, width, height] with width > 0 and height > 0 (all values finite)"


def _to_numpy(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """Array-like, numpy array or torch tensor (any device) -> numpy array of ``dtype``.

    torch is not imported here: a tensor is recognised by its ``detach`` method, so numpy-only callers never pay
    for the torch import.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if getattr(x, "dtype", None) is not None and not x.dtype.is_floating_point:
            x = x.double()
        x = x.float().numpy() if x.dtype.itemsize < 4 else x.numpy()  # bf16/fp16 have no (safe) numpy view
    return np.asarray(x, dtype=dtype)


def _check_size(size: Sequence[float], name: str) -> tuple[float, float]:
    """Validate a ``(width, height)`` pair of positive numbers."""
    arr = np.asarray(size, dtype=np.float64).reshape(-1)
    if arr.shape != (2,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be (width, height) with two positive numbers, got {size!r}")
    return float(arr[0]), float(arr[1])


def _check_pairs(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as an ``(N, 2)`` float64 array (a single ``(2,)`` pair becomes N=1)."""
    arr = _to_numpy(x)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) or (2,), got shape {tuple(arr.shape)}")
    return arr


def box_to_center_scale(
    boxes: Any,
    input_size: Sequence[int] = (192, 256),
    padding: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes (COCO ``xywh``) to crop centres and scales in pixels.

    The centre is the box centre. The box is then widened or heightened (never shrunk) until its aspect ratio equals
    ``input_size`` width / height, and both sides are multiplied by ``padding``. Same arithmetic as the original
    top-down test pipeline (mmpose 0.x ``_xywh2cs``, without the training-only random centre jitter).

    Args:
        boxes: ``(N, 4)`` or a single ``(4,)`` box, COCO ``[x, y, width, height]`` in image pixels. Array-like, numpy
            or torch.
        input_size: network input ``(width, height)``; only its aspect ratio matters here.
        padding: multiplicative context margin (1.25 in ViTPose).

    Returns:
        ``centers`` ``(N, 2)`` float32 ``(x, y)`` and ``scales`` ``(N, 2)`` float32 ``(w, h)`` **in pixels**
        (``scales / 200`` is the original's scale in units of 200 px).

    Raises:
        ValueError: on a wrong shape, a non-finite value or a width/height <= 0; the message names the first
            offending box index and its value.
    """
    arr = _to_numpy(boxes)
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4) or (4,), got shape {tuple(arr.shape)}; {_BOX_RULE}")
    bad = ~np.all(np.isfinite(arr), axis=1) | (arr[:, 2] <= 0) | (arr[:, 3] <= 0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"box {i} is {arr[i].tolist()}: {_BOX_RULE}")
    in_w, in_h = _check_size(input_size, "input_size")
    if not (np.isfinite(padding) and padding > 0):
        raise ValueError(f"padding must be a positive number, got {padding!r}")

    aspect = in_w / in_h
    x, y, w, h = arr.T
    centers = np.stack([x + 0.5 * w, y + 0.5 * h], axis=1)
    # Grow the short side to the target aspect; the equality case keeps both as they are (as the original).
    w_new = np.where(w < aspect * h, h * aspect, w)
    h_new = np.where(w > aspect * h, w / aspect, h)
    scales = np.stack([w_new, h_new], axis=1) * padding
    return centers.astype(np.float32), scales.astype(np.float32)


def get_udp_warp_matrices(
    centers: Any,
    scales: Any,
    output_size: Sequence[int],
    rotations: Any = None,
) -> np.ndarray:
    """UDP affine matrices mapping image pixels to crop pixels, vectorised over boxes.

    Equals the original ``get_warp_matrix(theta=rotation, size_input=center * 2, size_dst=(W - 1, H - 1),
    size_target=scale)`` with ``scale`` in pixels. Written out, for an image point ``p`` and rotation ``R(theta)``:
    ``q = diag((W - 1) / s_w, (H - 1) / s_h) @ (R @ (p - c) + s / 2)``, i.e. the box of extent ``s`` centred on
    ``c`` is mapped onto the ``W - 1`` x ``H - 1`` pixel intervals of the crop.

    Args:
        centers: ``(N, 2)`` box centres ``(x, y)`` in image pixels.
        scales: ``(N, 2)`` box extents ``(w, h)`` in pixels.
        output_size: crop ``(width, height)``, e.g. ``(192, 256)``.
        rotations: ``(N,)`` angles in degrees (sign convention of the original ``get_warp_matrix``), or None for 0.

    Returns:
        ``(N, 2, 3)`` float32 matrices, usable with ``cv2.warpAffine``.
    """
    c = _check_pairs(centers, "centers")
    s = _check_pairs(scales, "scales")
    if c.shape != s.shape:
        raise ValueError(f"centers and scales must have the same shape, got {c.shape} and {s.shape}")
    out_w, out_h = _check_size(output_size, "output_size")
    n = c.shape[0]
    theta = np.zeros(n) if rotations is None else np.deg2rad(_to_numpy(rotations).reshape(-1))
    if theta.shape[0] not in (1, n):
        raise ValueError(f"rotations must have shape (N,) = ({n},), got {theta.shape}")
    theta = np.broadcast_to(theta, (n,))
    cos, sin = np.cos(theta), np.sin(theta)
    sx = (out_w - 1.0) / s[:, 0]
    sy = (out_h - 1.0) / s[:, 1]
    dx = c[:, 0]
    dy = c[:, 1]
    mats = np.empty((n, 2, 3), dtype=np.float64)
    mats[:, 0, 0] = cos * sx
    mats[:, 0, 1] = -sin * sx
    mats[:, 0, 2] = sx * (-cos * dx + sin * dy + 0.5 * s[:, 0])
    mats[:, 1, 0] = sin * sy
    mats[:, 1, 1] = cos * sy
    mats[:, 1, 2] = sy * (-sin * dx - cos * dy + 0.5 * s[:, 1])
    return mats.astype(np.float32)


def get_udp_warp_matrix(
    center: Any,
    scale: Any,
    output_size: Sequence[int],
    rotation: float = 0.0,
) -> np.ndarray:
    """UDP affine matrix for one box: ``(2,)`` centre, ``(2,)`` scale in pixels -> ``(2, 3)`` float32.

    See :func:`get_udp_warp_matrices`.
    """
    return get_udp_warp_matrices(center, scale, output_size, [rotation])[0]


def crop_boxes(
    image: np.ndarray,
    centers: Any,
    scales: Any,
    output_size: Sequence[int] = (192, 256),
) -> np.ndarray:
    """Cut one UDP-warped crop per box out of an image.

    One ``cv2.warpAffine`` per box with ``INTER_LINEAR`` and a constant 0 border, as the original test pipeline.

    Args:
        image: ``(H, W, C)`` uint8 or float32 (any dtype ``cv2.warpAffine`` supports).
        centers: ``(N, 2)`` box centres in image pixels.
        scales: ``(N, 2)`` box extents in pixels (see :func:`box_to_center_scale`).
        output_size: crop ``(width, height)``.

    Returns:
        ``(N, out_h, out_w, C)`` crops with the dtype of ``image``; ``(0, out_h, out_w, C)`` when N = 0.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must have shape (H, W, C), got shape {image.shape}")
    out_w, out_h = (int(v) for v in _check_size(output_size, "output_size"))
    c = _to_numpy(centers).reshape(-1, 2)
    s = _to_numpy(scales).reshape(-1, 2)
    channels = image.shape[2]
    out = np.zeros((c.shape[0], out_h, out_w, channels), dtype=image.dtype)
    if c.shape[0] == 0:
        return out
    mats = get_udp_warp_matrices(c, s, (out_w, out_h))
    src = np.ascontiguousarray(image)  # cv2 rejects negative-stride views such as img[..., ::-1]
    for i, mat in enumerate(mats):
        crop = cv2.warpAffine(
            src,
            mat,
            (out_w, out_h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        # cv2 drops a trailing channel axis of size 1; reshape restores it.
        out[i] = crop.reshape(out_h, out_w, channels)
    return out


def heatmap_to_image_coords(
    coords: Any,
    centers: Any,
    scales: Any,
    heatmap_size: Sequence[int],
) -> np.ndarray:
    """UDP back-transform of heatmap pixel coordinates to image coordinates (REFERENCE.md step 6).

    ``x = x_hm * s_w / (W_hm - 1) + c_x - s_w / 2`` and likewise for y: the exact inverse of
    :func:`get_udp_warp_matrices` (rotation 0) composed with the crop -> heatmap stride
    ``(input_size - 1) / (heatmap_size - 1)``; the input size cancels out.

    Args:
        coords: ``(N, K, 2)`` ``(x, y)`` in heatmap pixels (numpy or torch).
        centers: ``(N, 2)`` box centres in image pixels.
        scales: ``(N, 2)`` box extents in pixels.
        heatmap_size: heatmap ``(width, height)``, e.g. ``(48, 64)``.

    Returns:
        ``(N, K, 2)`` float32 image coordinates.
    """
    xy = _to_numpy(coords)
    if xy.ndim != 3 or xy.shape[2] != 2:
        raise ValueError(f"coords must have shape (N, K, 2), got shape {tuple(xy.shape)}")
    c = _check_pairs(centers, "centers")
    s = _check_pairs(scales, "scales")
    if c.shape[0] != xy.shape[0] or s.shape[0] != xy.shape[0]:
        raise ValueError(
            f"coords, centers and scales must agree on N, got {xy.shape[0]}, {c.shape[0]} and {s.shape[0]}"
        )
    hm_w, hm_h = _check_size(heatmap_size, "heatmap_size")
    if hm_w < 2 or hm_h < 2:
        raise ValueError(f"heatmap_size must be at least (2, 2) under UDP, got {heatmap_size!r}")
    per_px = s / np.array([hm_w - 1.0, hm_h - 1.0])  # image pixels per heatmap pixel, (N, 2)
    out = xy * per_px[:, None, :] + (c - 0.5 * s)[:, None, :]
    return out.astype(np.float32)
