"""UDP Gaussian heatmap codec: keypoints -> training targets, and heatmaps -> keypoints (as the original ViTPose).

Decoding follows the original test pipeline (mmpose 0.x ``keypoints_from_heatmaps`` with ``use_udp=True``,
``target_type="GaussianHeatmap"``, ``kernel=11``):

1. argmax of every heatmap; the score is the maximum; the location is -1 where the maximum is <= 0;
2. DARK-UDP refinement: Gaussian blur (``cv2.GaussianBlur((11, 11), sigmaX=0)``, i.e. sigma 2.0, border
   ``BORDER_REFLECT_101``), clip to [0.001, 50], log, edge padding by 1 pixel, finite-difference gradient and
   Hessian at the argmax, one Newton step ``x -= inv(H + eps * I) @ g``;
3. UDP back-transform to the image (:func:`vitpose.ops.geometry.heatmap_to_image_coords`).

Speed: the refinement only ever reads the blurred map on the 3 x 3 neighbourhood of the argmax, so instead of
blurring whole maps we gather, per map, the ``(k + 2) x (k + 2)`` raw patch that those nine blurred values depend on
(with the same reflected border as cv2) and blur only those patches, all of them in one ``cv2.GaussianBlur`` call.
For 64 x 48 maps and k = 11 that is 169 reads per map instead of blurring 3072 pixels, with no Python loop over
instances or keypoints; the blurred values are bit-identical to blurring each whole map with cv2 (tested). For torch
inputs on an accelerator the argmax and the patch gather run on the tensor's device and only about ``N * K * 170``
numbers are copied to the host.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np

from vitpose.errors import VitPoseError
from vitpose.ops.geometry import _to_numpy, get_udp_warp_matrices, heatmap_to_image_coords

__all__ = ["UDPHeatmapCodec", "flip_back", "flip_images", "get_maxima", "merge_flip_test", "refine_dark_udp"]

BlurBorder = Literal["reflect_101", "reflect"]

# Bounds and epsilon of the original DARK-UDP step.
_LOG_CLIP_MIN = 0.001
_LOG_CLIP_MAX = 50.0
_HESSIAN_EPS = float(np.finfo(np.float32).eps)
_CV2_BORDER = {"reflect_101": cv2.BORDER_REFLECT_101, "reflect": cv2.BORDER_REFLECT}


def _is_torch(x: Any) -> bool:
    return hasattr(x, "detach") and hasattr(x, "device")


def _flatten_heatmaps(heatmaps: Any) -> tuple[Any, tuple[int, int, int, int]]:
    """``(N, K, H, W)`` numpy / torch -> ``(N * K, H * W)`` float array of the same library, and the shape.

    float64 stays float64; every other dtype (fp16, bf16, ints) becomes float32, the precision the original ran in.
    A CPU tensor becomes a numpy view; a tensor on another device stays there (argmax and gather run on it).
    """
    if _is_torch(heatmaps):
        import torch

        hm = heatmaps.detach()
        if hm.dtype not in (torch.float32, torch.float64):
            hm = hm.float()
        if hm.device.type == "cpu":
            hm = hm.numpy()  # zero-copy; numpy's argmax/gather are faster than torch's on the CPU
    else:
        hm = np.asarray(heatmaps)
        if hm.dtype not in (np.float32, np.float64):
            hm = hm.astype(np.float32)
    if hm.ndim != 4:
        raise VitPoseError(f"heatmaps must have shape (N, K, H, W), got shape {tuple(hm.shape)}")
    n, k, h, w = (int(v) for v in hm.shape)
    if h < 2 or w < 2:
        raise VitPoseError(f"heatmaps must be at least 2 x 2, got {h} x {w}")
    return hm.reshape(n * k, h * w), (n, k, h, w)


def _argmax_flat(flat: Any) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise argmax (first occurrence, as numpy) and maximum of a 2-D array -> numpy ``(M,)`` int64, ``(M,)``."""
    if _is_torch(flat):
        if flat.shape[0] == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        vals, idx = flat.max(dim=1)
        return idx.cpu().numpy().astype(np.int64), vals.cpu().numpy()
    idx = np.argmax(flat, axis=1)
    # One pass over the data: read the maximum at the argmax (identical to amax, NaN included).
    vals = flat[np.arange(flat.shape[0]), idx]
    return idx.astype(np.int64), vals


def _gather_flat(flat: Any, index: np.ndarray) -> np.ndarray:
    """``flat[m, index[m, j]]`` for a numpy or torch ``flat``; returns numpy."""
    if _is_torch(flat):
        import torch

        return torch.gather(flat, 1, torch.from_numpy(index).to(flat.device)).cpu().numpy()
    return flat[np.arange(flat.shape[0])[:, None], index]


def _take_rows(flat: Any, rows: np.ndarray) -> Any:
    """``flat[rows]`` for numpy or torch, without a copy when every row is taken (the common case)."""
    if rows.size == flat.shape[0]:
        return flat
    if _is_torch(flat):
        import torch

        return flat[torch.from_numpy(rows).to(flat.device)]
    return flat[rows]


def _border_index(idx: np.ndarray, n: int, border: BlurBorder) -> np.ndarray:
    """Map any integer index onto ``[0, n)`` with cv2's reflected borders (repeated reflection for far indices).

    ``reflect_101`` (cv2 ``BORDER_REFLECT_101``, numpy ``reflect``): ``gfedcb|abcdefgh|gfedcba``.
    ``reflect`` (cv2 ``BORDER_REFLECT``, scipy.ndimage ``reflect``, numpy ``symmetric``): ``fedcba|abcdefgh|hgfedcb``.
    """
    if border == "reflect_101":
        if n == 1:
            return np.zeros_like(idx)
        period = 2 * (n - 1)
        i = np.mod(idx, period)
        return np.where(i >= n, period - i, i)
    period = 2 * n
    i = np.mod(idx, period)
    return np.where(i >= n, period - 1 - i, i)


@functools.lru_cache(maxsize=64)
def _border_table(n: int, pad: int, border: BlurBorder) -> np.ndarray:
    """``_border_index(i - pad)`` for ``i`` in ``[0, n + 2 pad)``: index ``j + pad`` maps position ``j`` of a padded
    axis onto ``[0, n)``. Read-only (it is shared)."""
    table = _border_index(np.arange(-pad, n + pad), n, border)
    table.flags.writeable = False
    return table


def _check_blur(kernel_size: int, sigma: float | None, border: str) -> None:
    if int(kernel_size) != kernel_size or kernel_size < 1 or kernel_size % 2 == 0:
        raise VitPoseError(f"blur kernel size must be a positive odd integer (cv2.GaussianBlur), got {kernel_size!r}")
    if sigma is not None and not np.isfinite(sigma):
        raise VitPoseError(f"blur sigma must be finite or None, got {sigma!r}")
    if border not in ("reflect_101", "reflect"):
        raise VitPoseError(f"blur border must be 'reflect_101' (cv2 default, original) or 'reflect', got {border!r}")


def _refine_flat(
    flat: Any,
    shape: tuple[int, int, int, int],
    x: np.ndarray,
    y: np.ndarray,
    kernel_size: int,
    sigma: float | None,
    border: BlurBorder,
) -> np.ndarray:
    """DARK-UDP Newton step at integer positions ``x, y`` (``(M,)`` int, inside the map) -> ``(M, 2)`` float32.

    Reproduces, per map: blur the whole map, clip, log, edge-pad by 1, central differences at (x, y), one Newton
    step. Only the blurred 3 x 3 neighbourhood is ever read, so only the raw pixels it depends on are gathered.
    """
    _, _, h, w = shape
    m = x.shape[0]
    if m == 0:
        return np.zeros((0, 2), np.float32)
    r = kernel_size // 2
    size = kernel_size + 2  # raw patch side: blurred rows/cols x-1..x+1 need x-1-r..x+1+r
    # (M, size) raw rows and columns each patch reads, through cv2's border for the blur itself (a table lookup).
    offsets = np.arange(size)
    rows = _border_table(h, r + 1, border)[y[:, None] + offsets]
    cols = _border_table(w, r + 1, border)[x[:, None] + offsets]
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(m, size * size)
    patch = _gather_flat(flat, index)
    if patch.dtype not in (np.float32, np.float64):
        patch = patch.astype(np.float32)

    # Blur all patches with ONE cv2.GaussianBlur call on the patches stacked vertically: the 3 x 3 "valid" centre
    # of each patch only reads its own patch, and cv2 computes every output pixel with the same arithmetic wherever
    # it sits, so this is bit-identical to blurring each whole map (numpy re-implementations differ in the last
    # float32 bit, which the Newton step amplifies on flat maps). The border mode never reaches the valid centre.
    blurred = cv2.GaussianBlur(
        patch.reshape(m * size, size),
        (kernel_size, kernel_size),
        sigmaX=0.0 if sigma is None else float(sigma),
        sigmaY=0.0 if sigma is None else float(sigma),
        borderType=_CV2_BORDER[border],
    )
    blur = blurred.reshape(m, size, size)[:, r : r + 3, r : r + 3]  # blurred rows/cols at offsets -1, 0, +1

    # The original pads the blurred map by edge replication, so a neighbour outside the map reads the border pixel:
    # pick the clipped offset (e.g. at x = 0 the "x - 1" neighbour is the x = 0 value, column 1 of the 3 x 3).
    if y.min() > 0 and x.min() > 0 and y.max() < h - 1 and x.max() < w - 1:
        nb = blur  # every neighbour is inside the map
    else:
        step = np.arange(-1, 2)
        ri = np.minimum(np.maximum(y[:, None] + step, 0), h - 1) - y[:, None] + 1
        ci = np.minimum(np.maximum(x[:, None] + step, 0), w - 1) - x[:, None] + 1
        nb = blur[np.arange(m)[:, None, None], ri[:, :, None], ci[:, None, :]]  # (M, 3, 3), [row, col]

    # Working precision of the heatmaps (float32 as the original) for the clipped log-heatmap and its differences.
    nb = np.log(np.minimum(np.maximum(nb, nb.dtype.type(_LOG_CLIP_MIN)), nb.dtype.type(_LOG_CLIP_MAX)))
    i_ = nb[:, 1, 1]
    ix1, ix1_ = nb[:, 1, 2], nb[:, 1, 0]
    iy1, iy1_ = nb[:, 2, 1], nb[:, 0, 1]
    ix1y1, ix1_y1_ = nb[:, 2, 2], nb[:, 0, 0]
    dx = 0.5 * (ix1 - ix1_)
    dy = 0.5 * (iy1 - iy1_)
    dxx = ix1 - 2 * i_ + ix1_
    dyy = iy1 - 2 * i_ + iy1_
    # Mixed derivative from the (+1, +1) and (-1, -1) diagonals only, as the original.
    dxy = 0.5 * (ix1y1 - ix1 - iy1 + i_ + i_ - ix1_ - iy1_ + ix1_y1_)

    # inv(H + eps * I) @ g in float64 (the original adds a float64 eps * eye), closed form for 2 x 2. A singular
    # matrix gives inf/nan instead of raising, like a non-finite heatmap would in the original.
    a = dxx.astype(np.float64) + _HESSIAN_EPS
    d = dyy.astype(np.float64) + _HESSIAN_EPS
    b = dxy.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        det = a * d - b * b
        shift_x = (d * dx - b * dy) / det
        shift_y = (a * dy - b * dx) / det
    out = np.stack([x - shift_x, y - shift_y], axis=1)
    return out.astype(np.float32)


def get_maxima(heatmaps: Any) -> tuple[np.ndarray, np.ndarray]:
    """Argmax location and value of every heatmap (step 1 of the original decoder).

    Args:
        heatmaps: ``(N, K, H, W)`` numpy or torch (any device, any float dtype).

    Returns:
        ``coords`` ``(N, K, 2)`` float32 integer ``(x, y)`` heatmap pixels, ``-1`` where the maximum is <= 0 (or
        NaN), and ``scores`` ``(N, K)`` float32 maxima. Ties go to the first pixel in row-major order.
    """
    flat, (n, k, _, w) = _flatten_heatmaps(heatmaps)
    idx, vals = _argmax_flat(flat)
    coords = np.stack([idx % w, idx // w], axis=1).astype(np.float32)
    coords[~(vals > 0)] = -1.0
    return coords.reshape(n, k, 2), vals.astype(np.float32).reshape(n, k)


def refine_dark_udp(
    coords: Any,
    heatmaps: Any,
    kernel_size: int = 11,
    sigma: float | None = None,
    border: BlurBorder = "reflect_101",
) -> np.ndarray:
    """DARK-UDP sub-pixel refinement of argmax positions (step 2 of the original decoder, ``post_dark_udp``).

    Args:
        coords: ``(N, K, 2)`` integer ``(x, y)`` argmax positions in heatmap pixels (as :func:`get_maxima` returns;
            fractional parts are dropped). Entries with a negative or out-of-map coordinate (the ``-1`` of a
            non-positive heatmap) are returned unchanged: the original reads the neighbouring maps' memory there.
        heatmaps: ``(N, K, H, W)`` numpy or torch (any device, any float dtype).
        kernel_size: odd Gaussian blur size; 11 as ViTPose.
        sigma: blur sigma; None uses cv2's rule ``0.3 * ((kernel_size - 1) / 2 - 1) + 0.8`` (2.0 for 11) as the
            original (``sigmaX=0``). The transformers port blurs with 0.8.
        border: blur border, ``"reflect_101"`` (cv2 default, the original) or ``"reflect"`` (scipy.ndimage's
            default, used by the transformers port).

    Returns:
        ``(N, K, 2)`` float32 refined ``(x, y)`` in heatmap pixels.
    """
    _check_blur(kernel_size, sigma, border)
    flat, (n, k, h, w) = _flatten_heatmaps(heatmaps)
    xy = _to_numpy(coords).reshape(-1, 2)
    if xy.shape[0] != n * k:
        raise VitPoseError(f"coords must have shape (N, K, 2) = ({n}, {k}, 2), got {tuple(np.shape(coords))}")
    xi = np.floor(np.nan_to_num(xy[:, 0], nan=-1.0)).astype(np.int64)
    yi = np.floor(np.nan_to_num(xy[:, 1], nan=-1.0)).astype(np.int64)
    valid = (xi >= 0) & (yi >= 0) & (xi < w) & (yi < h)
    out = xy.astype(np.float32)
    sel = np.flatnonzero(valid)
    out[sel] = _refine_flat(_take_rows(flat, sel), (n, k, h, w), xi[sel], yi[sel], kernel_size, sigma, border)
    return out.reshape(n, k, 2)


class UDPHeatmapCodec:
    """UDP Gaussian heatmaps <-> keypoints, the encoder and decoder of ViTPose (mmpose's ``UDPHeatmap``).

    Args:
        input_size: network input ``(width, height)``.
        heatmap_size: heatmap ``(width, height)``.
        sigma: Gaussian sigma of the training targets, in heatmap pixels.
        blur_kernel: odd blur size of the DARK-UDP refinement (11 in the original).
        blur_sigma: blur sigma; None = cv2's rule from the kernel size (2.0 for 11, the original). 0.8 with
            ``blur_border="reflect"`` mimics the transformers port.
        blur_border: ``"reflect_101"`` (cv2's default, the original) or ``"reflect"`` (scipy's default).
    """

    def __init__(
        self,
        input_size: Sequence[int] = (192, 256),
        heatmap_size: Sequence[int] = (48, 64),
        sigma: float = 2.0,
        blur_kernel: int = 11,
        blur_sigma: float | None = None,
        blur_border: BlurBorder = "reflect_101",
    ) -> None:
        self.input_size = tuple(int(v) for v in input_size)
        self.heatmap_size = tuple(int(v) for v in heatmap_size)
        if len(self.input_size) != 2 or len(self.heatmap_size) != 2:
            raise VitPoseError("input_size and heatmap_size must be (width, height) pairs")
        if min(self.input_size) < 2 or min(self.heatmap_size) < 2:
            raise VitPoseError(f"sizes must be at least 2, got {self.input_size} and {self.heatmap_size}")
        if not (np.isfinite(sigma) and sigma > 0):
            raise VitPoseError(f"sigma must be a positive number, got {sigma!r}")
        _check_blur(blur_kernel, blur_sigma, blur_border)
        self.sigma = float(sigma)
        self.blur_kernel = int(blur_kernel)
        self.blur_sigma = blur_sigma
        self.blur_border: BlurBorder = blur_border

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, blur_kernel={self.blur_kernel}, blur_sigma={self.blur_sigma}, "
            f"blur_border={self.blur_border!r})"
        )

    @property
    def feat_stride(self) -> np.ndarray:
        """UDP input-pixels-per-heatmap-pixel ``(x, y)``: ``(input_size - 1) / (heatmap_size - 1)``."""
        return (np.array(self.input_size, np.float64) - 1.0) / (np.array(self.heatmap_size, np.float64) - 1.0)

    def encode(
        self,
        keypoints: Any,
        visible: Any,
        centers: Any = None,
        scales: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """UDP Gaussian targets (mmpose 0.x ``TopDownGenerateTarget``, ``use_udp=True``, ``GaussianHeatmap``).

        Each labelled keypoint becomes ``exp(-((x - mx)^2 + (y - my)^2) / (2 sigma^2))`` centred on its exact
        sub-pixel heatmap location ``m = kpt / feat_stride``, drawn on the ``(2 * 3 sigma + 1)^2`` window around
        the rounded centre ``int(m + 0.5)`` and zero elsewhere.

        Args:
            keypoints: ``(N, K, 2)`` ``(x, y)``: input-crop pixels if ``centers`` is None, else image pixels (mapped
                into the crop with the UDP matrix of ``centers``/``scales``).
            visible: ``(N, K)``; > 0 means labelled.
            centers, scales: ``(N, 2)`` box centres and extents in pixels, or None.

        Returns:
            ``heatmaps`` ``(N, K, H, W)`` float32 and ``weights`` ``(N, K)`` float32: 1 for labelled keypoints,
            0 when unlabelled, non-finite, or when the whole 3-sigma window lies outside the heatmap (heatmap all
            zero then).
        """
        kp = _to_numpy(keypoints)
        if kp.ndim != 3 or kp.shape[2] != 2:
            raise VitPoseError(f"keypoints must have shape (N, K, 2), got shape {tuple(kp.shape)}")
        vis = _to_numpy(visible)
        if vis.shape != kp.shape[:2]:
            raise VitPoseError(f"visible must have shape (N, K) = {kp.shape[:2]}, got shape {tuple(vis.shape)}")
        if (centers is None) != (scales is None):
            raise VitPoseError("pass both centers and scales (image coordinates) or neither (crop coordinates)")
        if centers is not None:
            mats = get_udp_warp_matrices(centers, scales, self.input_size).astype(np.float64)
            if mats.shape[0] != kp.shape[0]:
                raise VitPoseError(f"centers/scales must have N = {kp.shape[0]} rows, got {mats.shape[0]}")
            kp = np.einsum("nij,nkj->nki", mats[:, :, :2], kp) + mats[:, None, :, 2]

        hm_w, hm_h = self.heatmap_size
        radius = int(3 * self.sigma)  # 6 for sigma 2: the original's 13 x 13 window
        finite = np.all(np.isfinite(kp), axis=2)
        mu_ac = np.where(finite[..., None], kp, 0.0) / self.feat_stride  # exact sub-pixel centre, (N, K, 2)
        mu = np.trunc(mu_ac + 0.5)  # the original's int(m + 0.5): truncation toward zero, not floor
        # Keep a keypoint whose window [mu - r, mu + r] touches the heatmap at all (the original's range test).
        inside = (
            (mu[..., 0] - radius < hm_w)
            & (mu[..., 1] - radius < hm_h)
            & (mu[..., 0] + radius + 1 >= 0)
            & (mu[..., 1] + radius + 1 >= 0)
        )
        weights = ((vis > 0) & finite & inside).astype(np.float32)

        # Separable Gaussian on the truncated window: (N, K, W) x (N, K, H) outer product.
        xs = np.arange(hm_w, dtype=np.float64)
        ys = np.arange(hm_h, dtype=np.float64)
        two_var = 2.0 * self.sigma**2
        gx = np.exp(-((xs - mu_ac[..., 0:1]) ** 2) / two_var) * (np.abs(xs - mu[..., 0:1]) <= radius)
        gy = np.exp(-((ys - mu_ac[..., 1:2]) ** 2) / two_var) * (np.abs(ys - mu[..., 1:2]) <= radius)
        heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
        return heatmaps.astype(np.float32), weights

    def get_maxima(self, heatmaps: Any) -> tuple[np.ndarray, np.ndarray]:
        """See :func:`get_maxima`: ``(N, K, H, W)`` -> coords ``(N, K, 2)`` (-1 if max <= 0), scores ``(N, K)``."""
        return get_maxima(heatmaps)

    def refine_dark_udp(self, coords: Any, heatmaps: Any) -> np.ndarray:
        """See :func:`refine_dark_udp`, with this codec's blur settings. ``(N, K, 2)`` -> ``(N, K, 2)`` float32."""
        return refine_dark_udp(coords, heatmaps, self.blur_kernel, self.blur_sigma, self.blur_border)

    def decode(self, heatmaps: Any, centers: Any, scales: Any) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps to image keypoints, as the original ViTPose test pipeline.

        Args:
            heatmaps: ``(N, K, H, W)`` numpy or torch (any device, any float dtype). H and W are taken from the
                array, so a codec built for another heatmap size still decodes correctly.
            centers: ``(N, 2)`` box centres in image pixels.
            scales: ``(N, 2)`` box extents in pixels (:func:`vitpose.ops.geometry.box_to_center_scale`).

        Returns:
            ``keypoints`` ``(N, K, 2)`` float32 image ``(x, y)`` and ``scores`` ``(N, K)`` float32 heatmap maxima.
            A keypoint whose maximum is <= 0 is not refined: its heatmap location stays at (-1, -1) before the
            back-transform, as the original's argmax step returns it.
        """
        flat, shape = _flatten_heatmaps(heatmaps)
        n, k, h, w = shape
        idx, vals = _argmax_flat(flat)
        valid = vals > 0
        coords = np.full((n * k, 2), -1.0, dtype=np.float32)
        sel = np.flatnonzero(valid)
        if sel.size:
            coords[sel] = _refine_flat(
                _take_rows(flat, sel),
                shape,
                idx[sel] % w,
                idx[sel] // w,
                self.blur_kernel,
                self.blur_sigma,
                self.blur_border,
            )
        keypoints = heatmap_to_image_coords(coords.reshape(n, k, 2), centers, scales, (w, h))
        return keypoints, vals.astype(np.float32).reshape(n, k)


def _flip_permutation(flip_pairs: Any, num_channels: int) -> np.ndarray:
    pairs = _to_numpy(flip_pairs, dtype=np.float64)
    if pairs.size == 0:
        return np.arange(num_channels)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or np.any(pairs != np.round(pairs)):
        raise VitPoseError(f"flip_pairs must be (P, 2) integer channel indices, got shape {pairs.shape}")
    pairs = pairs.astype(np.int64)
    if pairs.min() < 0 or pairs.max() >= num_channels:
        raise VitPoseError(f"flip_pairs index out of range for {num_channels} channels: {pairs.tolist()}")
    perm = np.arange(num_channels)
    perm[pairs[:, 0]] = pairs[:, 1]
    perm[pairs[:, 1]] = pairs[:, 0]
    return perm


def flip_back(heatmaps: Any, flip_pairs: Any) -> Any:
    """Undo a horizontal flip on heatmaps predicted from flipped crops.

    Swaps each left/right channel pair, then mirrors the width axis. No half-pixel shift: under UDP the crop and
    heatmap flips are exact (``x -> W - 1 - x`` in both, with the stride ``(W_in - 1) / (W_hm - 1)``).

    Args:
        heatmaps: ``(N, K, H, W)`` numpy array or torch tensor.
        flip_pairs: ``(P, 2)`` channel index pairs (e.g. left/right eye), array-like or tensor.

    Returns:
        A new ``(N, K, H, W)`` array/tensor of the input's type, dtype and device.
    """
    if heatmaps.ndim != 4:
        raise VitPoseError(f"heatmaps must have shape (N, K, H, W), got shape {tuple(heatmaps.shape)}")
    perm = _flip_permutation(flip_pairs, int(heatmaps.shape[1]))
    if _is_torch(heatmaps):
        import torch

        return heatmaps[:, torch.from_numpy(perm).to(heatmaps.device)].flip(-1)
    return np.ascontiguousarray(np.asarray(heatmaps)[:, perm, :, ::-1])


def merge_flip_test(heatmaps: Any, flip_pairs: Any, flip_test: bool = True) -> Any:
    """The flip handling of `forward(flip_pairs=..., flip_test=...)`, shared by every back-end (the PyTorch model,
    ONNX Runtime), so that they agree to the bit.

    With `flip_test`, `heatmaps` holds the heatmaps of N crops followed by those of their N mirror images: the
    mirrored half is flipped back (:func:`flip_back` with `flip_pairs`) and averaged with the plain half, the
    original's test-time augmentation. Without it (transformers' convention), heatmaps of crops the caller flipped
    already are flipped back where `flip_pairs` is given, else returned as they are.

    Args:
        heatmaps: ``(2N, K, H, W)`` with `flip_test`, else ``(N, K, H, W)``; numpy array or torch tensor.
        flip_pairs: ``(P, 2)`` left/right channel pairs (required with `flip_test`), or None.

    Returns:
        ``(N, K, H, W)`` of the input's type.
    """
    if flip_test:
        if flip_pairs is None:
            raise VitPoseError("the flip test needs flip_pairs: the (P, 2) left/right keypoint pairs")
        n = heatmaps.shape[0] // 2
        return (heatmaps[:n] + flip_back(heatmaps[n:], flip_pairs)) * 0.5
    return heatmaps if flip_pairs is None else flip_back(heatmaps, flip_pairs)


def flip_images(pixel_values: Any) -> Any:
    """Mirror a batch of images horizontally (the last, width axis): ``(N, C, H, W)`` torch (or numpy) -> same."""
    if _is_torch(pixel_values):
        return pixel_values.flip(-1)
    return np.ascontiguousarray(np.asarray(pixel_values)[..., ::-1])
