"""`build_detector(name)`: the detector behind the CLI's --detector option."""

from __future__ import annotations

import warnings
from typing import Any

import torch

from vitpose.deprecation import renamed_kwargs
from vitpose.detectors.base import PersonDetector
from vitpose.detectors.boxes import FullImageDetector
from vitpose.detectors.hog import HOGDetector
from vitpose.detectors.rtdetr import (
    INSTALL_HINT,
    RTDetrDetector,
    cached_locally,
    hub_reachable,
    import_transformers,
)
from vitpose.errors import DetectorError, VitPoseError
from vitpose.hub import is_hub_id

DETECTOR_NAMES = ("auto", "rtdetr", "hog", "full-image")
_ALIASES = {"rt-detr": "rtdetr", "full": "full-image", "fullimage": "full-image"}


def check_detector_name(name: str, *, animals: bool = False) -> str:
    """The canonical name of the detector `name` ("auto", "rtdetr", "hog", "full-image"; aliases accepted), checked
    without building anything, so that a wrong choice is one error before any image is read.

    Raises:
        VitPoseError: an unknown name (the message lists the choices), or "hog" with `animals` (a configuration
            error: HOG only finds upright people; the message says what to use instead).
    """
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in DETECTOR_NAMES:
        raise VitPoseError(f"unknown detector {name!r}: choose one of {', '.join(DETECTOR_NAMES)}")
    if key == "hog" and animals:
        raise VitPoseError(
            "the HOG detector only finds upright people, not animals: use --detector rtdetr (COCO's animal "
            "classes), full-image (images that are already crops of one animal) or --boxes FILE"
        )
    return key


@renamed_kwargs(threshold="det_thr")
def build_detector(
    name: str = "auto",
    *,
    device: str | torch.device | None = None,
    det_thr: float | None = None,
    animals: bool = False,
    **kwargs: Any,
) -> PersonDetector:
    """The detector called `name`: "rtdetr", "hog", "full-image" or "auto".

    - "rtdetr": `RTDetrDetector` (or `RTDetrDetector.for_animals` with `animals`), with `device`, `det_thr`
      and `kwargs` (model, labels, batch_size, hub options).
    - "hog": `HOGDetector(det_thr=det_thr, **kwargs)` (`device` does not apply). With `animals` it is an error:
      HOG only knows upright people.
    - "full-image": `FullImageDetector()`, one box per whole image.
    - "auto": RT-DETR as above when transformers imports and the weights load (from a local directory, the
      Hugging Face cache, or the hub when it can be reached); otherwise a `UserWarning` saying why RT-DETR was not
      used, and `HOGDetector(det_thr=det_thr)` (`FullImageDetector()` with `animals`, for which HOG is
      meaningless).

    `det_thr`: the detector's score threshold; None keeps each detector's default (RT-DETR 0.3, HOG 0: its
    scores, a logistic of the SVM margin, are above 0.5 for every window it reports).

    Raises:
        ValueError: an unknown name (the message lists the choices), or "hog" with `animals`.
        ImportError / DetectorError: "rtdetr" without transformers or without loadable weights.
    """
    key = check_detector_name(name, animals=animals)
    if key == "full-image":
        _no_kwargs(key, kwargs)
        return FullImageDetector()
    if key == "hog":
        return HOGDetector(**_given(det_thr=det_thr), **kwargs)
    if key == "rtdetr":
        return _rtdetr(device, det_thr, animals, kwargs)

    # auto
    model = str(kwargs.get("model", RTDetrDetector.DEFAULT_MODEL))
    try:
        import_transformers()
        hub_options = {k: v for k, v in kwargs.items() if k not in {"model", "labels", "batch_size"}}
        if is_hub_id(model) and not cached_locally(model, **hub_options) and not hub_reachable():
            raise DetectorError(
                f"the weights of {model!r} are not in the Hugging Face cache and the hub cannot be reached"
            )
        return _rtdetr(device, det_thr, animals, kwargs)
    except ImportError:
        reason = f"transformers is not installed ({INSTALL_HINT})"
    except DetectorError as err:
        reason = str(err)
    if animals:
        warnings.warn(
            f"--detector auto: RT-DETR was not used because {reason}. For animals the HOG people detector is "
            "meaningless, so each whole image is taken as one animal (--detector full-image): pass --boxes FILE "
            "for images with several animals",
            UserWarning,
            stacklevel=3,  # past the renamed_kwargs wrapper
        )
        return FullImageDetector()
    try:
        detector = HOGDetector(**_given(det_thr=det_thr))
    except DetectorError as err:
        raise DetectorError(f"no person detector is available: RT-DETR: {reason}; HOG: {err}") from err
    warnings.warn(
        f"--detector auto: RT-DETR was not used because {reason}. Falling back to OpenCV's HOG people detector "
        "(or choose --detector full-image, or --boxes FILE)",
        UserWarning,
        stacklevel=3,
    )
    return detector


def _rtdetr(device: Any, det_thr: float | None, animals: bool, kwargs: dict[str, Any]) -> RTDetrDetector:
    if animals:
        return RTDetrDetector.for_animals(device=device, **_given(det_thr=det_thr), **kwargs)
    return RTDetrDetector(device=device, **_given(det_thr=det_thr), **kwargs)


def _given(**options: Any) -> dict[str, Any]:
    """The options that are not None (None: the detector's own default)."""
    return {key: value for key, value in options.items() if value is not None}


def _no_kwargs(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"the {name} detector takes no options, got {sorted(kwargs)}")
