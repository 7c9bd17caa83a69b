"""Moved: the estimator to `vitpose.inference.estimator`, image loading and input expansion to `vitpose.media`.
This module re-exports both for one release (0.2) and will then be removed."""

from vitpose.errors import ImageReadError  # noqa: F401
from vitpose.inference.estimator import *  # noqa: F403
from vitpose.inference.estimator import PoseEstimator, dataset_info_for  # noqa: F401
from vitpose.media import IMAGE_SUFFIXES, FailedImage, expand_inputs, load_image  # noqa: F401
