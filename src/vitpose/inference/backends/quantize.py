"""int8 dynamic quantisation of the network's Linear layers (CPU).

The ViT's work is almost all in its Linear layers (qkv, proj, fc1, fc2, experts). Dynamic quantisation stores their
weights as int8 (per output channel) and quantises each activation batch on the fly, so the matrix products run in
int8 with int32 accumulation; convolutions, attention, LayerNorm and the head stay float32. The result is an
approximation: the benchmark (`benchmarks/run.py`) reports its heatmap and keypoint deviation next to its speed.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from vitpose.errors import VitPoseError
from vitpose.models.pose import VitPoseForPoseEstimation


def quantize_int8(model: VitPoseForPoseEstimation, per_channel: bool = True) -> VitPoseForPoseEstimation:
    """A copy of `model` (CPU, float32, eval) whose Linear layers run as int8 dynamic-quantised kernels.

    Args:
        model: the float model (left unchanged).
        per_channel: one weight scale per output channel (more accurate) rather than one per layer.

    Returns:
        A `VitPoseForPoseEstimation` with the same call, config and outputs (approximately); CPU only.
    """
    if model.device.type != "cpu" or model.dtype != torch.float32:
        raise VitPoseError(
            f"int8 dynamic quantisation runs on the CPU in float32; this model is on {model.device} in {model.dtype}"
        )
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        quantized = quantize_dynamic(model.eval(), {nn.Linear: qconfig}, dtype=torch.qint8, inplace=False)
    return quantized.eval()
