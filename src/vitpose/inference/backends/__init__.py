"""Alternative inference back-ends for the estimator.

- `vitpose.inference.backends.onnx.OnnxPoseModel`: an exported graph run by ONNX Runtime (`pip install onnxruntime`).
- `vitpose.inference.backends.quantize.quantize_int8`: the PyTorch model with int8 dynamically quantised Linear layers.

Both quack like `VitPoseForPoseEstimation` for `vitpose.inference.estimator.PoseEstimator` and the
transformers ViTPose documentation's example.
"""

from vitpose.inference.backends.quantize import quantize_int8

__all__ = ["quantize_int8"]
