"""What the estimator needs of a pose network: the `PoseModel` protocol, met by `VitPoseForPoseEstimation`, its int8
version (`quantize_int8`) and `OnnxPoseModel`, and `check_pose_model`, which says what a wrong object lacks."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from vitpose.config import VitPoseConfig
from vitpose.errors import VitPoseError

# The attributes `PoseEstimator` reads, and why (the message of check_pose_model lists the missing ones).
REQUIRED = {
    "config": "a VitPoseConfig (sizes, heads, keypoint layout)",
    "device": "the torch.device its inputs go to",
    "dtype": "the torch.dtype of its inputs",
    "is_moe": "whether it needs a dataset_index (ViTPose++)",
    "eval": "eval() -> itself",
}


@runtime_checkable
class PoseModel(Protocol):
    """A pose network as the estimator uses it.

    `model(pixel_values (B, 3, H, W), dataset_index=None | int | (B,), flip_test=False, flip_pairs=None)` returns an
    object whose `heatmaps` are (B, K, H/4, W/4).
    """

    config: VitPoseConfig

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def is_moe(self) -> bool: ...

    def eval(self) -> Any: ...

    def __call__(self, pixel_values: torch.Tensor, **kwargs: Any) -> Any: ...


def check_pose_model(model: Any) -> PoseModel:
    """`model` itself when it can serve the estimator; a `VitPoseError` naming what it lacks otherwise."""
    missing = [f"{name} ({why})" for name, why in REQUIRED.items() if not hasattr(model, name)]
    if not callable(model):
        missing.insert(0, "__call__ (model(pixel_values, ...) -> outputs with heatmaps)")
    if not missing and not isinstance(model.config, VitPoseConfig):
        missing.append(f"config must be a vitpose VitPoseConfig, not {type(model.config).__name__}")
    if missing:
        raise VitPoseError(
            f"a {type(model).__name__} cannot serve as the pose model: it lacks " + "; ".join(missing) + ". Pass "
            "a VitPoseForPoseEstimation (from_pretrained), its quantize_int8 version or an OnnxPoseModel"
        )
    return model


__all__ = ["PoseModel", "check_pose_model"]
