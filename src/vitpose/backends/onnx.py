"""Moved to `vitpose.inference.backends.onnx`; re-exported here for one release (0.2)."""

from vitpose.inference.backends.onnx import *  # noqa: F403
from vitpose.inference.backends.onnx import OnnxPoseModel, quantize_onnx_int8  # noqa: F401
