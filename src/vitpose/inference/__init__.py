"""Inference: the top-down estimator (`PoseEstimator`), its results (`PoseResult`, one JSON schema for a person)
and the alternative back-ends (ONNX Runtime, int8)."""

from vitpose.inference.estimator import PoseEstimator
from vitpose.inference.results import PoseResult
from vitpose.media import FailedImage

__all__ = ["FailedImage", "PoseEstimator", "PoseResult"]
