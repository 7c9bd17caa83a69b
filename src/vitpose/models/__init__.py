"""The network: ViT backbone (dense or mixture-of-experts) and keypoint heads."""

from vitpose.models.heads import ClassicHead, SimpleHead
from vitpose.models.pose import VitPoseEstimatorOutput, VitPoseForPoseEstimation
from vitpose.models.vit import VitPoseBackbone

__all__ = ["ClassicHead", "SimpleHead", "VitPoseBackbone", "VitPoseEstimatorOutput", "VitPoseForPoseEstimation"]
