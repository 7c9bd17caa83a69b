"""One error base: every exception class the package defines derives from `VitPoseError` (itself a `ValueError`,
so callers that caught `ValueError` keep working); warnings and interruptions are not errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import vitpose
from vitpose.errors import (
    AnnotationError,
    CheckpointError,
    DetectorError,
    ImageReadError,
    MissingDependencyError,
    VitPoseError,
)

# Modules that need an optional extra at import time are imported where it is installed (the tests install them).
MODULES = sorted(m.name for m in pkgutil.walk_packages(vitpose.__path__, "vitpose.") if not m.name.endswith("__main__"))


def _exception_classes():
    found = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("vitpose"):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_error_class_derives_from_vitpose_error():
    classes = _exception_classes()
    # The package defines a good number of them; the scan must have found them, not nothing.
    assert len(classes) >= 8, sorted(classes)
    # Warnings are not errors, and an interruption (a KeyboardInterrupt carrying where a run stopped) is not one
    # either: both stay outside the family, everything else is in it.
    errors = {n: c for n, c in classes.items() if issubclass(c, Exception) and not issubclass(c, Warning)}
    stray = [n for n, c in errors.items() if not issubclass(c, VitPoseError)]
    assert not stray, f"error classes outside the VitPoseError family: {stray}"
    assert issubclass(VitPoseError, ValueError)


def test_old_names_are_the_same_classes():
    from vitpose import CheckpointError as top_level
    from vitpose.checkpoints import CheckpointError as from_checkpoints
    from vitpose.detectors import BoxesFileError, UnknownImageError
    from vitpose.detectors import DetectorError as from_detectors
    from vitpose.evaluation import EvaluationError

    assert top_level is from_checkpoints is CheckpointError
    assert from_detectors is DetectorError and not issubclass(DetectorError, RuntimeError)
    assert issubclass(BoxesFileError, AnnotationError) and issubclass(UnknownImageError, LookupError)
    assert EvaluationError is AnnotationError
    assert issubclass(MissingDependencyError, ImportError) and issubclass(ImageReadError, VitPoseError)


def test_library_argument_errors_are_vitpose_errors():
    """A sample of user mistakes across the layers: each raises a VitPoseError (what the CLI shows as one line)."""
    from vitpose.datasets import get_dataset_info
    from vitpose.device import resolve_device
    from vitpose.media import load_image
    from vitpose.ops.geometry import box_to_center_scale

    with pytest.raises(VitPoseError, match="cocoa"):
        get_dataset_info("cocoa")
    with pytest.raises(VitPoseError, match="invalid device"):
        resolve_device("gpu7")
    with pytest.raises(ImageReadError, match="no such file"):
        load_image("/nonexistent/photo.jpg")
    with pytest.raises(VitPoseError, match="width > 0"):
        box_to_center_scale([[0, 0, -1, 5]], input_size=(192, 256))
