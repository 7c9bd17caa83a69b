"""`AutoProcessor`: the transformers ViTPose documentation's example loads both the person
detector's processor and ViTPose's through one name.

A ViTPose checkpoint (or an original `.pth`) gets `vitpose.VitPoseImageProcessor`; anything else (the RT-DETR
detector of that example, for instance) is handed to `transformers.AutoProcessor`, which must then be installed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vitpose.errors import MissingDependencyError
from vitpose.hub import hub_options, resolve_file
from vitpose.processor import PROCESSOR_NAME, VitPoseImageProcessor

_VITPOSE_PROCESSORS = {"VitPoseImageProcessor", "VitPoseImageProcessorPil", "VitPoseImageProcessorFast"}


def _is_vitpose(source: str | os.PathLike[str], hub_kwargs: dict[str, Any]) -> bool:
    if Path(source).is_file():
        return True  # an original ViTPose checkpoint file
    processor = resolve_file(source, PROCESSOR_NAME, required=False, **hub_kwargs)
    if processor is not None:
        try:
            kind = json.loads(Path(processor).read_text()).get("image_processor_type", "")
        except (OSError, json.JSONDecodeError, AttributeError):
            kind = ""
        if kind in _VITPOSE_PROCESSORS:
            return True
    config = resolve_file(source, "config.json", required=False, **hub_kwargs)
    if config is not None:
        try:
            return json.loads(Path(config).read_text()).get("model_type") == "vitpose"
        except (OSError, json.JSONDecodeError, AttributeError):
            return False
    return processor is None  # nothing to tell by: a weights-only directory of ours


class AutoProcessor:
    """`AutoProcessor.from_pretrained(source)`: ours for ViTPose, transformers' for anything else."""

    def __init__(self) -> None:
        raise TypeError("use AutoProcessor.from_pretrained(source)")

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], **kwargs: Any) -> Any:
        hub = hub_options(kwargs)
        if _is_vitpose(source, hub):
            return VitPoseImageProcessor.from_pretrained(source, **kwargs)
        try:
            import transformers
        except ImportError as err:
            raise MissingDependencyError(
                f"{source!r} is not a ViTPose checkpoint; loading its processor needs transformers "
                "(pip install 'vitpose[detector]' or pip install transformers)"
            ) from err
        return getattr(transformers, cls.__name__).from_pretrained(source, **kwargs)


class AutoImageProcessor(AutoProcessor):
    """Same dispatch as `AutoProcessor`."""
