"""Alternative inference back-ends for the estimator.

- `vitpose.inference.backends.onnx.OnnxPoseModel`: an exported graph run by ONNX Runtime (`pip install onnxruntime`).
- `vitpose.inference.backends.quantize.quantize_int8`: the PyTorch model with int8 dynamically quantised Linear layers.

Both meet the `PoseModel` protocol (`vitpose.inference.backends.base`), as `VitPoseForPoseEstimation` does, for
`vitpose.inference.estimator.PoseEstimator` and the transformers ViTPose documentation's example.
"""

from vitpose.inference.backends.base import PoseModel, check_pose_model
from vitpose.inference.backends.quantize import quantize_int8

__all__ = ["PoseModel", "check_pose_model", "quantize_int8"]
