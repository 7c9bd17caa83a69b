"""The original ViTPose training augmentations, as geometry: random flip, half-body, random scale and rotation,
and the UDP affine crop.

The order and the distributions are those of the original training pipeline (mmpose 0.x ``TopDownRandomFlip(0.5)``,
``TopDownHalfBodyTransform(8, 0.3)``, ``TopDownGetRandomScaleRotation(40, 0.5)`` with its default ``rot_prob=0.6``,
``TopDownAffine(use_udp=True)``):

1. flip with probability 0.5: the image is mirrored (``x -> W_img - 1 - x``, pixel centres onto pixel centres),
   left/right keypoints swap channels, the box centre is mirrored;
2. half-body with probability 0.3 when more than 8 keypoints are labelled: the crop is re-centred on the upper or
   the lower body (the upper one first with probability Phi(0.5) ~ 0.69, because the original draws ``randn() <
   0.5``; kept as is), its box widened to the input aspect and scaled by 1.5;
3. scale by ``clip(1 + 0.5 * N(0, 1), 0.5, 1.5)``; rotate, with probability 0.6, by ``clip(40 * N(0, 1), -80, 80)``
   degrees;
4. the UDP affine warp (`vitpose.ops.geometry.get_udp_warp_matrices`) of the centre, scale and rotation.

Instead of mirroring the image and then warping it, the flip is folded into the warp matrix (one ``warpAffine``
of the original image): mirroring maps pixel centres onto pixel centres, so the crop is the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vitpose.datasets import DatasetInfo
from vitpose.ops.geometry import get_udp_warp_matrices

__all__ = ["AugmentConfig", "CropGeometry", "half_body_box", "sample_geometry"]


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the training augmentations (defaults: the original's)."""

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_padding: float = 1.5
    scale_factor: float = 0.5
    rotation_factor: float = 40.0
    rotation_prob: float = 0.6

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class CropGeometry:
    """Where one training crop comes from.

    Attributes:
        center: (2,) crop centre in (possibly mirrored) image pixels.
        scale: (2,) crop extent (w, h) in pixels.
        rotation: degrees (the original's sign convention).
        flipped: whether the image was mirrored.
        matrix: (2, 3) float64 affine map from ORIGINAL (unmirrored) image pixels to crop pixels; the mirror, when
            there is one, is folded in.
        permutation: (K,) channel order: crop keypoint k is original keypoint ``permutation[k]``.
    """

    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flipped: bool
    matrix: np.ndarray
    permutation: np.ndarray


def half_body_box(
    keypoints: np.ndarray,
    visible: np.ndarray,
    info: DatasetInfo,
    aspect: float,
    padding: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Centre and scale (pixels) of the upper or lower body, or None where too few of its joints are labelled.

    keypoints: (K, 2); visible: (K,) > 0 for labelled; aspect: input width / height.
    """
    upper_ids = set(info.upper_body_ids)
    labelled = np.flatnonzero(visible > 0)
    upper = [i for i in labelled if i in upper_ids]
    lower = [i for i in labelled if i not in upper_ids]
    # The original draws randn() (not rand()) here, preferring the upper body with probability ~0.69.
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        chosen = upper
    elif len(lower) > 2:
        chosen = lower
    else:
        chosen = upper
    if len(chosen) < 2:
        return None
    pts = keypoints[chosen].astype(np.float64)
    center = pts.mean(axis=0)
    w, h = pts.max(axis=0) - pts.min(axis=0)
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    return center, np.array([w, h]) * padding


def sample_geometry(
    center: np.ndarray,
    scale: np.ndarray,
    keypoints: np.ndarray,
    visible: np.ndarray,
    image_width: int,
    info: DatasetInfo,
    input_size: tuple[int, int],
    rng: np.random.Generator | None,
    config: AugmentConfig | None = None,
) -> CropGeometry:
    """Draw the augmentation of one instance (or none when `rng` is None) and return its crop geometry.

    Args:
        center, scale: (2,) the instance's box centre and padded extent in pixels (`box_to_center_scale`).
        keypoints: (K, 2) image pixels; visible: (K,) > 0 for labelled keypoints.
        image_width: width of the image, for the mirror.
        info: the data set (flip pairs, upper body).
        input_size: network input (width, height).
        rng: the sample's random generator; None = no augmentation (the evaluation crop).
        config: probabilities and ranges.
    """
    cfg = config or AugmentConfig()
    center = np.asarray(center, np.float64).copy()
    scale = np.asarray(scale, np.float64).copy()
    k = keypoints.shape[0]
    perm = np.arange(k)
    flipped = False
    rotation = 0.0
    if rng is not None:
        kp, vis = keypoints.astype(np.float64), visible
        if rng.random() <= cfg.flip_prob:
            flipped = True
            perm = np.asarray(info.flip_indices, np.int64)
            kp = kp[perm].copy()
            kp[:, 0] = image_width - 1 - kp[:, 0]
            vis = vis[perm]
            center[0] = image_width - 1 - center[0]
        if np.count_nonzero(vis > 0) > cfg.half_body_min_joints and info.upper_body_ids:
            if rng.random() < cfg.half_body_prob:
                box = half_body_box(kp, vis, info, input_size[0] / input_size[1], cfg.half_body_padding, rng)
                if box is not None:
                    center, scale = box
        sf, rf = cfg.scale_factor, cfg.rotation_factor
        scale = scale * float(np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf))
        angle = float(np.clip(rng.standard_normal() * rf, -2 * rf, 2 * rf))
        rotation = angle if rng.random() <= cfg.rotation_prob else 0.0
    matrix = get_udp_warp_matrices(center[None], scale[None], input_size, [rotation]).astype(np.float64)[0]
    if flipped:
        mirror = np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        matrix = matrix @ mirror
    return CropGeometry(center, scale, rotation, flipped, matrix, perm)
