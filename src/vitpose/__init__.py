"""vitpose: ViTPose and ViTPose++ pose estimation with a native PyTorch network.

The seed-compatible API (transformers' names): `VitPoseConfig`, `VitPoseImageProcessor`, `VitPoseForPoseEstimation`
and `AutoProcessor`.
"""

from vitpose.auto import AutoImageProcessor, AutoProcessor
from vitpose.checkpoints import CheckpointError
from vitpose.config import VitPoseBackboneConfig, VitPoseConfig
from vitpose.models.pose import VitPoseEstimatorOutput, VitPoseForPoseEstimation
from vitpose.processor import VitPoseImageProcessor

__version__ = "0.1.0"

__all__ = [
    "AutoImageProcessor",
    "AutoProcessor",
    "CheckpointError",
    "VitPoseBackboneConfig",
    "VitPoseConfig",
    "VitPoseEstimatorOutput",
    "VitPoseForPoseEstimation",
    "VitPoseImageProcessor",
    "__version__",
]
