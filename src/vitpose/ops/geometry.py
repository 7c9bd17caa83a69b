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

from vitpose.errors import VitPoseError

__all__ = [
    "box_to_center_scale",
    "crop_and_normalize",
    "crop_boxes",
    "crop_boxes_torch",
    "cv2_sampling_positions",
    "get_udp_warp_matrices",
    "get_udp_warp_matrix",
    "heatmap_to_image_coords",
    "sampled_region",
]

# ImageNet statistics (RGB, 0-1 pixels): the normalisation of every ViTPose checkpoint.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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
    if isinstance(size, tuple) and len(size) == 2 and all(type(v) in (int, float) for v in size):
        w, h = size  # the common case, without numpy's overhead (this runs once per processor call)
        if 0 < w < float("inf") and 0 < h < float("inf"):
            return float(w), float(h)
    arr = np.asarray(size, dtype=np.float64).reshape(-1)
    if arr.shape != (2,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise VitPoseError(f"{name} must be (width, height) with two positive numbers, got {size!r}")
    return float(arr[0]), float(arr[1])


def _check_pairs(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as an ``(N, 2)`` float64 array (a single ``(2,)`` pair becomes N=1)."""
    arr = _to_numpy(x)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise VitPoseError(f"{name} must have shape (N, 2) or (2,), got shape {tuple(arr.shape)}")
    return arr


def box_to_center_scale(
    boxes: Any,
    input_size: Sequence[int] = (192, 256),
    padding: float = 1.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes (COCO ``xywh``) to crop centres and scales in pixels.

    The centre is the box centre. The box is then widened or heightened (never shrunk) until its aspect ratio equals
    ``input_size`` width / height, and both sides are multiplied by ``padding``. Same arithmetic as the original
    top-down test pipeline (mmpose 0.x ``_xywh2cs``, without the training-only random centre jitter), with its
    roundings: the centre and the aspect-corrected size in float64, then the scale as float32 ``w / 200``, times the
    padding in float32, times 200 in float32 (where the original's crop and decoder turn it into pixels).

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
        raise VitPoseError(f"boxes must have shape (N, 4) or (4,), got shape {tuple(arr.shape)}; {_BOX_RULE}")
    # One reduction for the common, valid case; the per-box search only runs to name the offending box.
    if not (np.isfinite(arr).all() and (arr[:, 2:] > 0).all()):
        bad = ~np.all(np.isfinite(arr), axis=1) | (arr[:, 2] <= 0) | (arr[:, 3] <= 0)
        i = int(np.flatnonzero(bad)[0])
        raise VitPoseError(f"box {i} is {arr[i].tolist()}: {_BOX_RULE}")
    in_w, in_h = _check_size(input_size, "input_size")
    if not (np.isfinite(padding) and padding > 0):
        raise VitPoseError(f"padding must be a positive number, got {padding!r}")

    aspect = in_w / in_h
    size = arr[:, 2:]
    centers = arr[:, :2] + 0.5 * size
    w, h = size[:, 0], size[:, 1]
    # Grow the short side to the target aspect; the equality case keeps both as they are (as the original).
    scales = np.array(size)
    np.copyto(scales[:, 0], h * aspect, where=w < aspect * h)
    np.copyto(scales[:, 1], w / aspect, where=w > aspect * h)
    # The original's three float32 roundings, bit for bit: `_xywh2cs` stores `np.array([w / 200, h / 200],
    # float32)` and multiplies it by the padding in float32; the crop and the decoder then use `scale * 200` in
    # float32. Rounded once instead, about half of all scales differ from it in the last bit.
    pixels = (scales / 200.0).astype(np.float32)
    pixels *= np.float32(padding)
    pixels *= np.float32(200.0)
    return centers.astype(np.float32), pixels


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
        raise VitPoseError(f"centers and scales must have the same shape, got {c.shape} and {s.shape}")
    out_w, out_h = _check_size(output_size, "output_size")
    n = c.shape[0]
    if rotations is None:
        # Inference (no rotation): the same numbers as the general formula with cos = 1, sin = 0, fewer operations.
        mats = np.zeros((n, 2, 3), dtype=np.float64)
        sx = (out_w - 1.0) / s[:, 0]
        sy = (out_h - 1.0) / s[:, 1]
        mats[:, 0, 0] = sx
        mats[:, 0, 2] = sx * (0.5 * s[:, 0] - c[:, 0])
        mats[:, 1, 1] = sy
        mats[:, 1, 2] = sy * (0.5 * s[:, 1] - c[:, 1])
        return mats.astype(np.float32)
    theta = np.deg2rad(_to_numpy(rotations).reshape(-1))
    if theta.shape[0] not in (1, n):
        raise VitPoseError(f"rotations must have shape (N,) = ({n},), got {theta.shape}")
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


def _warp_into(src: np.ndarray, mat: np.ndarray, size: tuple[int, int], dst: np.ndarray) -> np.ndarray:
    """``cv2.warpAffine`` (bilinear, constant 0 border, as the original) written into ``dst`` ``(h, w, C)``.

    cv2 silently allocates a new array when ``dst`` does not suit it; the result is then copied into ``dst``, so the
    caller can always rely on ``dst``.
    """
    target = dst[:, :, 0] if dst.shape[2] == 1 else dst  # cv2 represents one channel as a 2-D array
    res = cv2.warpAffine(
        src, mat, size, dst=target, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    if res is not target and not np.shares_memory(res, target):
        target[...] = res.reshape(target.shape)
    return dst


def _output_array(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A new array of ``shape`` and ``dtype``, or ``out`` after checking that it is one."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != shape or out.dtype != dtype:
        raise VitPoseError(f"out must be a {dtype} array of shape {shape}, got {out.dtype} {out.shape}")
    return out


def _prepare_crop(image: Any, centers: Any, scales: Any, output_size: Sequence[int]):
    image = np.asarray(image)
    if image.ndim != 3:
        raise VitPoseError(f"image must have shape (H, W, C), got shape {image.shape}")
    out_w, out_h = (int(v) for v in _check_size(output_size, "output_size"))
    c = _to_numpy(centers).reshape(-1, 2)
    s = _to_numpy(scales).reshape(-1, 2)
    if c.shape != s.shape:
        raise VitPoseError(f"centers and scales must have the same shape, got {c.shape} and {s.shape}")
    src = np.ascontiguousarray(image)  # cv2 rejects negative-stride views such as img[..., ::-1]
    if src.shape[2] == 1:
        src = src[:, :, 0]
    return src, image.shape[2], c, s, out_w, out_h


def crop_boxes(
    image: np.ndarray,
    centers: Any,
    scales: Any,
    output_size: Sequence[int] = (192, 256),
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Cut one UDP-warped crop per box out of an image.

    One ``cv2.warpAffine`` per box with ``INTER_LINEAR`` and a constant 0 border, as the original test pipeline,
    written straight into the output array.

    Args:
        image: ``(H, W, C)`` uint8 or float32 (any dtype ``cv2.warpAffine`` supports).
        centers: ``(N, 2)`` box centres in image pixels.
        scales: ``(N, 2)`` box extents in pixels (see :func:`box_to_center_scale`).
        output_size: crop ``(width, height)``.
        out: optional ``(N, out_h, out_w, C)`` array of the image's dtype to fill (and return).

    Returns:
        ``(N, out_h, out_w, C)`` crops with the dtype of ``image``; ``(0, out_h, out_w, C)`` when N = 0.
    """
    src, channels, c, s, out_w, out_h = _prepare_crop(image, centers, scales, output_size)
    out = _output_array(out, (c.shape[0], out_h, out_w, channels), src.dtype)
    if c.shape[0] == 0:
        return out
    for i, mat in enumerate(get_udp_warp_matrices(c, s, (out_w, out_h))):
        _warp_into(src, mat, (out_w, out_h), out[i])
    return out


def crop_and_normalize(
    image: np.ndarray,
    centers: Any,
    scales: Any,
    output_size: Sequence[int] = (192, 256),
    scale: Sequence[float] = (1.0, 1.0, 1.0),
    offset: Sequence[float] = (0.0, 0.0, 0.0),
    out: np.ndarray | None = None,
) -> np.ndarray:
    """UDP crops (as :func:`crop_boxes`), each channel mapped to ``pixel * scale[c] + offset[c]``, channels first.

    The fast path of the processor: per box one ``cv2.warpAffine`` into a small reused buffer (it stays in the
    cache), then one multiply and one add per channel straight into the float32 output. Nothing else is allocated,
    and no torch operation runs (so torch's and OpenCV's thread pools never wait on each other here).

    Args:
        image: ``(H, W, C)`` uint8 (or float) image; C = 4 (RGBX or RGBA, e.g. a PIL image's own buffer: the 4th
            channel is not read when 3 output channels are asked for) and C = 1 (grey: every output channel reads
            it) are accepted besides C = 3.
        centers, scales: ``(N, 2)`` box centres and extents in pixels.
        output_size: crop ``(width, height)``.
        scale, offset: per-output-channel ``(C_out,)`` factors, e.g. ``1 / (255 * std)`` and ``-mean / std``.
        out: optional ``(N, C_out, out_h, out_w)`` float32 array to fill (e.g. a slice of a torch tensor's buffer).

    Returns:
        ``(N, C_out, out_h, out_w)`` float32 (``out`` when given).
    """
    src, channels, c, s, out_w, out_h = _prepare_crop(image, centers, scales, output_size)
    a = np.asarray(scale, dtype=np.float32).reshape(-1)
    b = np.asarray(offset, dtype=np.float32).reshape(-1)
    out_channels = a.shape[0]
    if b.shape != a.shape or not (out_channels == channels or channels == 1 or (channels == 4 and out_channels == 3)):
        raise VitPoseError(
            f"scale and offset must hold one value per output channel: as many as the image has ({channels}), or 3 "
            f"for a 4-channel (RGBX / RGBA) or any number for a 1-channel image; got {a.shape} and {b.shape}"
        )
    out = _output_array(out, (c.shape[0], out_channels, out_h, out_w), np.dtype(np.float32))
    if c.shape[0] == 0:
        return out
    buffer = np.empty((out_h, out_w, channels), dtype=src.dtype)
    for i, mat in enumerate(get_udp_warp_matrices(c, s, (out_w, out_h))):
        crop = _warp_into(src, mat, (out_w, out_h), buffer)
        # cv2.split gives contiguous planes: the multiply-adds then stream through memory (faster than strided).
        planes = cv2.split(crop) if channels > 1 else (crop[:, :, 0],)
        for ch in range(out_channels):
            np.multiply(planes[ch if channels > 1 else 0], a[ch], out=out[i, ch])
            out[i, ch] += b[ch]
    return out


def sampled_region(
    centers: Any, scales: Any, image_size: Sequence[int], margin: int = 3
) -> tuple[int, int, int, int] | None:
    """The part of an image that UDP crops of these boxes (rotation 0) read: ``(x0, y0, x1, y1)``, or None.

    A crop samples exactly the box ``centre +- scale / 2`` (UDP maps the crop's first and last pixel centres onto
    its edges); bilinear interpolation reads one pixel more on each side, and ``margin`` adds safety. Clipped to the
    image; None when nothing of the image is read.
    """
    c = _to_numpy(centers).reshape(-1, 2)
    s = _to_numpy(scales).reshape(-1, 2)
    if c.shape[0] == 0:
        return None
    width, height = (int(v) for v in image_size)
    lo = np.floor((c - 0.5 * s).min(axis=0)) - margin
    hi = np.ceil((c + 0.5 * s).max(axis=0)) + margin + 1
    x0, y0 = int(max(lo[0], 0)), int(max(lo[1], 0))
    x1, y1 = int(min(hi[0], width)), int(min(hi[1], height))
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def cv2_sampling_positions(
    centers: Any,
    scales: Any,
    output_size: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where ``cv2.warpAffine`` (bilinear) samples the image for each crop pixel, in 1/32 image pixels.

    OpenCV inverts the matrix, then for crop pixel (u, v) computes ``X = (round(1024 * (m01 v + m02)) + 16 +
    round(1024 * m00 u)) >> 5`` (likewise Y): source positions rounded to 1/32 pixel, the grid the original crops
    were sampled on. The result is separable into a per-row and a per-column term, returned as such (small
    integer arrays); ``X = (row_x[:, v, None] + col_x[:, None, u]) >> 5``.

    Returns:
        ``row_x``, ``row_y`` ``(N, out_h)`` and ``col_x``, ``col_y`` ``(N, out_w)`` int64.
    """
    out_w, out_h = (int(v) for v in _check_size(output_size, "output_size"))
    mats = get_udp_warp_matrices(centers, scales, (out_w, out_h)).astype(np.float64)  # the float32 cv2 receives
    # cv2's inversion of a 2 x 3 affine matrix (double precision).
    m00, m01, m02 = mats[:, 0, 0], mats[:, 0, 1], mats[:, 0, 2]
    m10, m11, m12 = mats[:, 1, 0], mats[:, 1, 1], mats[:, 1, 2]
    det = m00 * m11 - m01 * m10
    inv_det = np.where(det != 0, 1.0 / np.where(det != 0, det, 1.0), 0.0)
    i00, i11 = m11 * inv_det, m00 * inv_det
    i01, i10 = -m01 * inv_det, -m10 * inv_det
    i02 = -i00 * m02 - i01 * m12
    i12 = -i10 * m02 - i11 * m12
    u = np.arange(out_w, dtype=np.float64)
    v = np.arange(out_h, dtype=np.float64)
    scale, half = 1024.0, 16  # cv2's AB_SCALE (10 bits) and the rounding term down to INTER_BITS (5)
    col_x = np.rint(i00[:, None] * u * scale).astype(np.int64)
    col_y = np.rint(i10[:, None] * u * scale).astype(np.int64)
    row_x = np.rint((i01[:, None] * v + i02[:, None]) * scale).astype(np.int64) + half
    row_y = np.rint((i11[:, None] * v + i12[:, None]) * scale).astype(np.int64) + half
    return row_x, row_y, col_x, col_y


def crop_boxes_torch(
    image: Any,
    centers: Any,
    scales: Any,
    output_size: Sequence[int] = (192, 256),
    round_to_integers: bool | None = None,
) -> Any:
    """UDP crops with ``torch.nn.functional.grid_sample`` on the image's device (the GPU path of the processor).

    Samples at the positions ``cv2.warpAffine`` uses (rounded to 1/32 pixel, :func:`cv2_sampling_positions`),
    bilinearly with zeros outside the image (cv2's constant 0 border), and for 8-bit images rounds to integers as
    cv2 does. The only difference left is cv2's 15-bit fixed-point interpolation weights: the crops are within one
    grey level of :func:`crop_boxes` (tested), most pixels equal.

    Args:
        image: ``(H, W, C)`` torch tensor (uint8 or float; any device) or numpy array (moved to the CPU torch).
        centers, scales: ``(N, 2)`` box centres and extents in pixels.
        output_size: crop ``(width, height)``.
        round_to_integers: round the samples (default: when the image is uint8, as cv2).

    Returns:
        ``(N, C, out_h, out_w)`` float32 tensor on the image's device, channels first (raw pixel values).
    """
    import torch
    import torch.nn.functional as F

    if isinstance(image, torch.Tensor):
        img = image
    else:
        # A read-only array (from PIL) is copied: torch.from_numpy warns about it, and silencing the warning would
        # change the warning filters other threads share.
        array = np.ascontiguousarray(image)
        img = torch.from_numpy(array if array.flags.writeable else array.copy())
    if img.ndim != 3:
        raise VitPoseError(f"image must have shape (H, W, C), got shape {tuple(img.shape)}")
    height, width, channels = (int(v) for v in img.shape)
    out_w, out_h = (int(v) for v in _check_size(output_size, "output_size"))
    if round_to_integers is None:
        round_to_integers = img.dtype == torch.uint8
    c = _to_numpy(centers).reshape(-1, 2)
    s = _to_numpy(scales).reshape(-1, 2)
    n = c.shape[0]
    if n == 0:
        return torch.zeros((0, channels, out_h, out_w), dtype=torch.float32, device=img.device)
    row_x, row_y, col_x, col_y = (
        torch.from_numpy(a).to(img.device) for a in cv2_sampling_positions(c, s, (out_w, out_h))
    )
    # Integer positions in 1/32 px (exact), then grid_sample's normalised coordinates (align_corners=False:
    # pixel i spans [-1 + 2i / size, -1 + 2(i + 1) / size], its centre at (2i + 1) / size - 1).
    xq = (row_x[:, :, None] + col_x[:, None, :]) >> 5
    yq = (row_y[:, :, None] + col_y[:, None, :]) >> 5
    gx = (xq * 2 + 32).to(torch.float32) / (32.0 * width) - 1.0
    gy = (yq * 2 + 32).to(torch.float32) / (32.0 * height) - 1.0
    grid = torch.stack([gx, gy], dim=-1)  # (N, out_h, out_w, 2)
    source = img.permute(2, 0, 1).to(torch.float32)[None].expand(n, channels, height, width)
    crops = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return crops.round_() if round_to_integers else crops


def heatmap_to_image_coords(
    coords: Any,
    centers: Any,
    scales: Any,
    heatmap_size: Sequence[int],
) -> np.ndarray:
    """UDP back-transform of heatmap pixel coordinates to image coordinates (docs/reference.md, test-time step 6).

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
        raise VitPoseError(f"coords must have shape (N, K, 2), got shape {tuple(xy.shape)}")
    c = _check_pairs(centers, "centers")
    s = _check_pairs(scales, "scales")
    if c.shape[0] != xy.shape[0] or s.shape[0] != xy.shape[0]:
        raise VitPoseError(
            f"coords, centers and scales must agree on N, got {xy.shape[0]}, {c.shape[0]} and {s.shape[0]}"
        )
    hm_w, hm_h = _check_size(heatmap_size, "heatmap_size")
    if hm_w < 2 or hm_h < 2:
        raise VitPoseError(f"heatmap_size must be at least (2, 2) under UDP, got {heatmap_size!r}")
    per_px = s / np.array([hm_w - 1.0, hm_h - 1.0])  # image pixels per heatmap pixel, (N, 2)
    out = xy * per_px[:, None, :] + (c - 0.5 * s)[:, None, :]
    return out.astype(np.float32)
