"""One base for every error a user can cause: `VitPoseError`.

Each error class of the package derives from it, so that a caller (the command line, a service) catches one class
and shows its message as it is, while anything else keeps its traceback (a bug). It is a `ValueError`, so code that
caught `ValueError` around the library before keeps working.
"""

from __future__ import annotations


class VitPoseError(ValueError):
    """A problem with what the user passed (a file, an option, a checkpoint); the message says what and what to do."""


class CheckpointError(VitPoseError):
    """A checkpoint that cannot be read or does not fit the model; the message says which and why."""


class ConfigError(VitPoseError):
    """A model configuration (`config.json` or keyword arguments) with a missing, wrong-typed or invalid value."""


class ImageReadError(VitPoseError):
    """An input image that cannot be read; the message names the file and the reason.

    Attributes:
        path: the file (None for an array or tensor).
        reason: the message without the file name (what is wrong and what to do), for lines that name it already.
        too_large: the image has more pixels than the decompression-bomb limit (the service answers 413).
    """

    def __init__(
        self, message: str, *, path: str | None = None, reason: str | None = None, too_large: bool = False
    ) -> None:
        super().__init__(message)
        self.path = path
        self.reason = message if reason is None else reason
        self.too_large = too_large


class DatasetError(VitPoseError):
    """An unknown data-set name or index, or a data-set description (JSON) that does not describe a skeleton."""


class AnnotationError(VitPoseError):
    """A keypoint annotation or results file that cannot be used; the message names the file, entry and field."""


class DetectorError(VitPoseError):
    """A person detector that cannot be built or run (missing extra, weights unavailable); the message says why."""


class MissingDependencyError(VitPoseError, ImportError):
    """An optional extra that a feature needs is not installed; the message names the `pip install` to run."""


class DeviceError(VitPoseError):
    """A device that does not exist here or that the options disagree on."""


class OutputError(VitPoseError):
    """An output that would replace one of the run's inputs (or cannot be written); nothing was written."""


__all__ = [
    "AnnotationError",
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "DetectorError",
    "DeviceError",
    "ImageReadError",
    "MissingDependencyError",
    "OutputError",
    "VitPoseError",
]
