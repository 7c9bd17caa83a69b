"""vitpose: ViTPose and ViTPose++ pose estimation with a native PyTorch network.

The transformers-compatible API (the names of the transformers ViTPose documentation): `VitPoseConfig`,
`VitPoseImageProcessor`, `VitPoseForPoseEstimation` and `AutoProcessor`; the top-down estimator `PoseEstimator` and
its `PoseResult`; `VitPoseError`, the base of every error a user can cause.
"""

from vitpose.auto import AutoImageProcessor, AutoProcessor
from vitpose.config import VitPoseBackboneConfig, VitPoseConfig
from vitpose.errors import CheckpointError, VitPoseError
from vitpose.inference.estimator import PoseEstimator
from vitpose.inference.results import PoseResult
from vitpose.media import FailedImage
from vitpose.models.pose import VitPoseEstimatorOutput, VitPoseForPoseEstimation
from vitpose.processor import VitPoseImageProcessor

__version__ = "0.2.0"

__all__ = [
    "AutoImageProcessor",
    "AutoProcessor",
    "CheckpointError",
    "FailedImage",
    "PoseEstimator",
    "PoseResult",
    "VitPoseBackboneConfig",
    "VitPoseConfig",
    "VitPoseError",
    "VitPoseEstimatorOutput",
    "VitPoseForPoseEstimation",
    "VitPoseImageProcessor",
    "__version__",
]
