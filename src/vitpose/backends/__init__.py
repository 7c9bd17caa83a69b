"""Alternative inference back-ends for the estimator.

- `vitpose.backends.onnx.OnnxPoseModel`: an exported graph run by ONNX Runtime (`pip install onnxruntime`).
- `vitpose.backends.quantize.quantize_int8`: the PyTorch model with int8 dynamically quantised Linear layers.

Both quack like `VitPoseForPoseEstimation` for `vitpose.pipeline.PoseEstimator` and the seed's code.
"""

from vitpose.backends.quantize import quantize_int8

__all__ = ["quantize_int8"]
