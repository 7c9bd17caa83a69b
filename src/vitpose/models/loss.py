"""The training loss of ViTPose: heatmap MSE weighted by the per-keypoint target weights.

mmpose 0.x ``JointsMSELoss(use_target_weight=True)``, which every ViTPose config uses, computes, for each keypoint
channel k, ``nn.MSELoss()(pred[:, k] * w[:, k], target[:, k] * w[:, k])`` (a mean over the batch and the heatmap
pixels), sums over k and divides by K. Since every channel has the same number of pixels this is

    loss = mean over (b, k, y, x) of (w[b, k] * (pred[b, k, y, x] - target[b, k, y, x])) ** 2

with NO factor 0.5 (the HRNet code it descends from had one; mmpose 0.x dropped it), and the weight squared
(``w`` multiplies both terms before the difference; with 0/1 weights this changes nothing).

ViTPose++ (``TopDownMoE.forward_train``) runs every head on the whole batch with the targets and weights of the
other data sets' samples zeroed, and adds the heads' losses. Each head's loss is therefore the sum over its own
samples divided by (whole batch size x its keypoint count x pixels); this function computes exactly that for a
mixed batch, without running a head on samples that are not its own.
"""

from __future__ import annotations

import torch

from vitpose.errors import VitPoseError

__all__ = ["heatmap_mse_loss"]


def heatmap_mse_loss(
    heatmaps: torch.Tensor,
    labels: torch.Tensor,
    label_weights: torch.Tensor | None = None,
    num_keypoints: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted heatmap MSE (mmpose ``JointsMSELoss`` with ``use_target_weight=True``), summed over heads.

    Args:
        heatmaps: (B, K, H, W) predictions (padded to the largest K in a mixed ViTPose++ batch).
        labels: (B, K, H, W) target heatmaps (zero-padded the same way).
        label_weights: (B, K) or (B, K, 1) target weights; None = all ones (mmpose's ``use_target_weight=False``).
        num_keypoints: (B,) keypoints of each sample's head, for mixed batches; None = K for every sample.

    Returns:
        A scalar float32 tensor: ``sum_b sum_k sum_px (w_bk (pred - target))^2 / (B * K_b * H * W)``.
    """
    if heatmaps.ndim != 4:
        raise VitPoseError(f"heatmaps must have shape (B, K, H, W), got {tuple(heatmaps.shape)}")
    if labels.shape != heatmaps.shape:
        raise VitPoseError(
            f"labels must have the shape of the heatmaps {tuple(heatmaps.shape)} (target heatmaps, e.g. from "
            f"vitpose.training.KeypointDataset), got {tuple(labels.shape)}"
        )
    b, k, h, w = heatmaps.shape
    if b == 0:
        raise VitPoseError("cannot compute a loss over an empty batch")
    diff = heatmaps.float() - labels.to(device=heatmaps.device, dtype=torch.float32)
    if label_weights is not None:
        weights = label_weights.to(device=heatmaps.device, dtype=torch.float32)
        if weights.ndim == 3 and weights.shape[-1] == 1:
            weights = weights[..., 0]
        if weights.shape != (b, k):
            raise VitPoseError(
                f"label_weights must have shape (B, K) = ({b}, {k}) or (B, K, 1), got {tuple(weights.shape)}"
            )
        diff = diff * weights[:, :, None, None]
    per_sample = diff.square().sum(dim=(1, 2, 3))  # (B,)
    if num_keypoints is None:
        return per_sample.sum() / (b * k * h * w)
    counts = num_keypoints.to(device=heatmaps.device, dtype=torch.float32).reshape(b)
    return (per_sample / counts).sum() / (b * h * w)
