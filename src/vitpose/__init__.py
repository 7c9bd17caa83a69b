"""vitpose: ViTPose and ViTPose++ pose estimation with a native PyTorch network.

The seed-compatible API (transformers' names): `VitPoseConfig`, `VitPoseImageProcessor`, `VitPoseForPoseEstimation`
and `AutoProcessor`.
"""

from vitpose.auto import AutoImageProcessor, AutoProcessor
from vitpose.checkpoints import CheckpointError
from vitpose.config import VitPoseBackboneConfig, VitPoseConfig
from vitpose.models.pose import VitPoseEstimatorOutput, VitPoseForPoseEstimation
from vitpose.pipeline import FailedImage, PoseEstimator
from vitpose.processor import VitPoseImageProcessor
from vitpose.results import PoseResult

__version__ = "0.1.0"

__all__ = [
    "AutoImageProcessor",
    "AutoProcessor",
    "CheckpointError",
    "FailedImage",
    "PoseEstimator",
    "PoseResult",
    "VitPoseBackboneConfig",
    "VitPoseConfig",
    "VitPoseEstimatorOutput",
    "VitPoseForPoseEstimation",
    "VitPoseImageProcessor",
    "__version__",
]
