"""Keypoint heads (decoders): feature map (B, C, 16, 12) -> heatmaps (B, K, 64, 48).

Names follow the original ViTPose `TopdownHeatmapSimpleHead` (`deconv_layers`, `final_layer`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SimpleHead(nn.Module):
    """The simple decoder: ReLU, bilinear upsampling x`scale_factor` (align_corners=False), 3x3 conv to K channels."""

    def __init__(self, in_channels: int, num_keypoints: int, scale_factor: int = 4) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, kernel_size=3, padding=1)

    @property
    def num_keypoints(self) -> int:
        return self.final_layer.out_channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w) -> heatmaps (B, K, h * scale_factor, w * scale_factor)."""
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
