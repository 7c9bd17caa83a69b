"""Keypoint heads (decoders): feature map (B, C, 16, 12) -> heatmaps (B, K, 64, 48).

Names follow the original ViTPose `TopdownHeatmapSimpleHead` (`deconv_layers`, `final_layer`).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from vitpose.errors import VitPoseError


class SimpleHead(nn.Module):
    """The simple decoder: ReLU, bilinear upsampling x`scale_factor` (align_corners=False), 3x3 conv to K channels.

    Computed in an equivalent, cheaper order (`fast`, the default). Bilinear upsampling works on each channel alone,
    is linear and separable: upsampling a map X (h, w) is A @ X @ B.T with A (H, h) and B (W, w) the interpolation
    matrices (`interpolation_matrix`). A 3x3 convolution is the sum, over its nine offsets (dy, dx), of a 1x1
    channel mix W[:, :, dy, dx] applied to the input shifted by (dy - 1, dx - 1), with zeros outside the map; a
    shift with zero fill of an upsampled map is that of A's rows (or B's). So: mix the C channels into 9 K maps at
    the low resolution (C -> 9K instead of upsampling C channels), then out = sum over (dy, dx) of
    A_dy @ map_(dy,dx) @ B_dx.T, done as two matrix products (the three dx, then the three dy, each concatenated),
    then the bias. Same numbers up to float rounding (tested to 1e-5), same parameters (`final_layer`). For ViT-B
    (C = 768, K = 17) the 3x3 convolution over 768 upsampled channels is gone, and no `F.interpolate` or `F.pad`
    runs at all (on the CPU both are slow: about 20x this head's time at batch 32).
    """

    def __init__(self, in_channels: int, num_keypoints: int, scale_factor: int = 4) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, kernel_size=3, padding=1)
        self.fast = True  # a switch for comparisons and debugging, not a parameter: checkpoints are unaffected

    @property
    def num_keypoints(self) -> int:
        return self.final_layer.out_channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w) -> heatmaps (B, K, h * scale_factor, w * scale_factor)."""
        if features.ndim != 4 or features.shape[1] != self.final_layer.in_channels:
            raise VitPoseError(
                f"features must have shape (batch, {self.final_layer.in_channels}, height, width), "
                f"got {tuple(features.shape)}"
            )
        if not self.fast:
            return self.forward_reference(features)
        b, c, h, w = features.shape
        k = self.num_keypoints
        s = self.scale_factor
        # (K, C, 3, 3) -> (9K, C), rows ordered (k, dy, dx): one 1x1 mix per kernel offset. Rearranged from the
        # parameter at every call (117k numbers for ViT-B, negligible), so it can never go stale.
        mix = self.final_layer.weight.permute(0, 2, 3, 1).reshape(9 * k, c)
        low = torch.matmul(mix, F.relu(features).reshape(b, c, h * w)).reshape(b, k, 3, 3, h, w)
        rows, cols = _shifted_interpolation(h, w, s, features.dtype, features.device)
        # Columns: (b, k, dy, h, [dx, w]) @ (3w, W) sums the three dx; rows: (H, 3h) @ (b, k, [dy, h], W) the dy.
        wide = torch.matmul(low.permute(0, 1, 2, 4, 3, 5).reshape(b, k, 3, h, 3 * w), cols)
        out = torch.matmul(rows, wide.reshape(b, k, 3 * h, w * s))
        bias = self.final_layer.bias
        return out if bias is None else out + bias.view(1, k, 1, 1)

    def forward_reference(self, features: torch.Tensor) -> torch.Tensor:
        """The original order of operations (ReLU, upsample C channels, 3x3 conv): (B, C, h, w) -> (B, K, H, W)."""
        x = F.interpolate(F.relu(features), scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return self.final_layer(x)


def interpolation_matrix(size: int, scale: int) -> torch.Tensor:
    """The (size * scale, size) float64 matrix of 1-D linear upsampling by `scale` with align_corners=False, as
    `F.interpolate(..., mode="bilinear")` computes it along one axis: output i samples the input at
    (i + 0.5) / scale - 0.5, clamped to [0, size - 1]."""
    out = torch.arange(size * scale, dtype=torch.float64)
    source = ((out + 0.5) / scale - 0.5).clamp(min=0)
    low = source.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    weight = source - low
    matrix = torch.zeros(size * scale, size, dtype=torch.float64)
    rows = torch.arange(size * scale)
    matrix.index_put_((rows, low), 1 - weight, accumulate=True)
    matrix.index_put_((rows, high), weight, accumulate=True)
    return matrix


def _shift_rows(matrix: torch.Tensor, offset: int) -> torch.Tensor:
    """Row i of the result is row i + offset of `matrix`, zero where that is outside it (a convolution's zero
    padding)."""
    n = matrix.shape[0]
    out = torch.zeros_like(matrix)
    lo, hi = max(0, -offset), min(n, n - offset)
    out[lo:hi] = matrix[lo + offset : hi + offset]
    return out


@functools.lru_cache(maxsize=16)
def _shifted_interpolation(
    h: int, w: int, scale: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The matrices of `SimpleHead`'s fast order: rows (H, 3h) = [A_0 | A_1 | A_2] and cols (3w, W) = [B_0.T; B_1.T;
    B_2.T], A_d / B_d the upsampling matrices with rows shifted by d - 1 (read-only tensors, shared by calls)."""
    # Plain tensors even when first asked for under inference mode: training uses the same cached ones.
    with torch.inference_mode(False), torch.no_grad():
        a, b = interpolation_matrix(h, scale), interpolation_matrix(w, scale)
        rows = torch.cat([_shift_rows(a, d - 1) for d in range(3)], dim=1)
        cols = torch.cat([_shift_rows(b, d - 1).T for d in range(3)], dim=0)
        return rows.to(device, dtype).contiguous(), cols.to(device, dtype).contiguous()


class ClassicHead(nn.Module):
    """The classic decoder: two (deconv 4x4 stride 2, BatchNorm, ReLU) blocks to 256 channels, 1x1 conv to K."""

    def __init__(self, in_channels: int, num_keypoints: int, channels: int = 256) -> None:
        super().__init__()
        self.deconv_layers = nn.Sequential(
            nn.ConvTranspose2d(in_channels, channels, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=1)

    @property
    def num_keypoints(self) -> int:
        return self.final_layer.out_channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w) -> heatmaps (B, K, 4h, 4w)."""
        return self.final_layer(self.deconv_layers(features))


def make_head(in_channels: int, num_keypoints: int, simple: bool, scale_factor: int = 4) -> SimpleHead | ClassicHead:
    return SimpleHead(in_channels, num_keypoints, scale_factor) if simple else ClassicHead(in_channels, num_keypoints)
