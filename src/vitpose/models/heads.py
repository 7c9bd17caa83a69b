"""Keypoint heads (decoders): feature map (B, C, 16, 12) -> heatmaps (B, K, 64, 48).

Names follow the original ViTPose `TopdownHeatmapSimpleHead` (`deconv_layers`, `final_layer`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vitpose.errors import VitPoseError


class SimpleHead(nn.Module):
    """The simple decoder: ReLU, bilinear upsampling x`scale_factor` (align_corners=False), 3x3 conv to K channels.

    Computed in an equivalent, cheaper order (`fast`, the default). Bilinear upsampling works on each channel alone
    and is linear, so it commutes with any mixing of channels. A 3x3 convolution is the sum, over its nine offsets
    (dy, dx), of a 1x1 channel mix W[:, :, dy, dx] applied to the input shifted by (dy - 1, dx - 1), with zeros
    outside the map. So: mix the C channels into 9 K maps at the low resolution (C -> 9K instead of upsampling C
    channels), upsample those 9 K maps, add each one shifted by its offset (zero-padded, as the convolution pads the
    upsampled input), then the bias. Same numbers up to float rounding (tested to 1e-5), same parameters
    (`final_layer`), about 1/20 of the work for ViT-B (C = 768, K = 17): the 3x3 convolution over the upsampled 768
    channels is gone.
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
        # (K, C, 3, 3) -> (9K, C), rows ordered (dy, dx, k): one 1x1 mix per kernel offset. Rearranged from the
        # parameter at every call (117k numbers for ViT-B, negligible), so it can never go stale.
        mix = self.final_layer.weight.permute(2, 3, 0, 1).reshape(9 * k, c)
        low = torch.matmul(mix, F.relu(features).reshape(b, c, h * w)).reshape(b, 9 * k, h, w)
        up = F.interpolate(low, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        height, width = up.shape[-2:]
        # The convolution's zero padding: out(y, x) = bias + sum over offsets of map_(dy,dx)(y + dy - 1, x + dx - 1).
        padded = F.pad(up, (1, 1, 1, 1)).reshape(b, 3, 3, k, height + 2, width + 2)
        out = padded[:, 0, 0, :, 0:height, 0:width]
        for dy in range(3):
            for dx in range(3):
                if dy or dx:
                    out = out + padded[:, dy, dx, :, dy : dy + height, dx : dx + width]
        bias = self.final_layer.bias
        return out if bias is None else out + bias.view(1, k, 1, 1)

    def forward_reference(self, features: torch.Tensor) -> torch.Tensor:
        """The original order of operations (ReLU, upsample C channels, 3x3 conv): (B, C, h, w) -> (B, K, H, W)."""
        x = F.interpolate(F.relu(features), scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return self.final_layer(x)


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
