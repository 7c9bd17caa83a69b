"""RT-DETR through transformers (the optional `detector` extra): the person detector of the
transformers ViTPose documentation's example."""

from __future__ import annotations

import os
import re
import socket
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from vitpose.deprecation import renamed_attribute, renamed_kwargs
from vitpose.detectors.base import Detections, check_images
from vitpose.device import resolve_device
from vitpose.errors import DetectorError, MissingDependencyError, VitPoseError

INSTALL_HINT = 'pip install "vitpose[detector]"'

# The 0-based label space of the RT-DETR COCO checkpoints on the hub: transformers' conversion script sets their
# id2label from huggingface/label-files `coco-detection-mmdet-id2label.json`, the 80 COCO categories numbered 0-79
# in COCO category-id order (0 person, ..., 14 bird, 15 cat, ..., 23 giraffe). COCO's own 1-based category ids
# (with gaps) are not used by these checkpoints.
PERSON_LABEL = 0
ANIMAL_LABEL_NAMES: dict[int, str] = {
    14: "bird",
    15: "cat",
    16: "dog",
    17: "horse",
    18: "sheep",
    19: "cow",
    20: "elephant",
    21: "bear",
    22: "zebra",
    23: "giraffe",
}
ANIMAL_LABELS: tuple[int, ...] = tuple(ANIMAL_LABEL_NAMES)

# from_pretrained options that the image processor understands too (the model takes all of them and more).
_PROCESSOR_HUB_KEYS = {
    "revision",
    "cache_dir",
    "token",
    "local_files_only",
    "force_download",
    "proxies",
    "subfolder",
    "trust_remote_code",
}
_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


def import_transformers() -> Any:
    """transformers, or an ImportError that says how to install it."""
    try:
        import transformers
    except ImportError as err:
        raise MissingDependencyError(
            f"the RT-DETR person detector needs transformers, which is not installed: {INSTALL_HINT} "
            "(or use --detector hog / full-image, or --boxes FILE)"
        ) from err
    return transformers


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    if any(flag.strip().upper() in {"1", "ON", "YES", "TRUE"} for flag in flags):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hugging Face endpoint (HF_ENDPOINT) opens within `timeout` seconds.

    A quick probe so that `build_detector("auto")` does not sit through the hub client's retries when offline.
    """
    if hub_offline():
        return False
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    if not url.hostname:
        return False
    try:
        with socket.create_connection((url.hostname, url.port or (80 if url.scheme == "http" else 443)), timeout):
            return True
    except OSError:
        return False


def cached_locally(model: str, **hub_kwargs: Any) -> bool:
    """Whether `model` is a local directory or a hub id whose config.json is in the Hugging Face cache."""
    if Path(model).is_dir():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(
            model, "config.json", cache_dir=hub_kwargs.get("cache_dir"), revision=hub_kwargs.get("revision")
        )
    except Exception:  # an id the hub client rejects (a missing local path, say): not cached
        return False
    return isinstance(found, str)


def unavailable_message(model: str, reason: str) -> str:
    """Why the RT-DETR weights could not be had, and what to use instead."""
    return (
        f"could not load the RT-DETR detector {model!r}: {reason.rstrip('. ')}. Without its weights (offline and "
        "not in the Hugging Face cache), use another detector: --detector hog (OpenCV's weak people detector, no "
        "weights), --detector full-image (images that are already person crops) or --boxes FILE (your own "
        "COCO-format detections); or download it where there is a connection (`huggingface-cli download "
        f"{model} --local-dir DIR`) and pass the local directory DIR as the model"
    )


def _resolve_device(device: str | torch.device | None) -> torch.device:
    """The detector's device: `vitpose.device.resolve_device`'s names and checks; None is CUDA where there is a GPU,
    else the CPU (RT-DETR is not run on MPS by default)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(device)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


class RTDetrDetector:
    """RT-DETR (or another transformers object detector) keeping the boxes of the requested labels.

    Images are resized by the checkpoint's image processor, run through `AutoModelForObjectDetection` in batches of
    `batch_size`, and decoded by the processor's `post_process_object_detection` with each image's (height, width)
    as target size, so boxes are in image pixels; they are converted from [x1, y1, x2, y2] to COCO
    [x, y, width, height]. A box is kept when its score is above `det_thr` (transformers' `score > threshold`)
    and its label is in `labels`.

    Args:
        model: hub id or local directory of a transformers checkpoint with an image processor.
        det_thr: score threshold in [0, 1).
        labels: label ids to keep, in the checkpoint's label space (0 = person in the RT-DETR COCO checkpoints).
        device: torch device; None picks CUDA when available, else the CPU.
        batch_size: images per forward pass.
        **hub_kwargs: passed to `from_pretrained` (revision, cache_dir, token, local_files_only, dtype, ...).

    Raises:
        ImportError: transformers is not installed (`pip install "vitpose[detector]"`).
        DetectorError: the weights cannot be loaded (offline and not cached, unknown id, not a detector).
    """

    DEFAULT_MODEL = "PekingU/rtdetr_r50vd_coco_o365"
    threshold = renamed_attribute("det_thr")  # the old name (0.1), kept for one release

    @renamed_kwargs(threshold="det_thr")
    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        det_thr: float = 0.3,
        labels: Sequence[int] = (PERSON_LABEL,),
        device: str | torch.device | None = None,
        batch_size: int = 8,
        **hub_kwargs: Any,
    ) -> None:
        self.model_id = str(model)
        self.det_thr = _check_threshold(det_thr)
        self.labels = _check_labels(labels)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise VitPoseError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.device = _resolve_device(device)
        import_transformers()
        self.processor, self.model = _load(self.model_id, hub_kwargs)
        if not hasattr(self.processor, "post_process_object_detection"):
            raise DetectorError(
                unavailable_message(
                    self.model_id,
                    f"its processor {type(self.processor).__name__} has no post_process_object_detection; "
                    "it is not an object detector",
                )
            )
        num_labels = int(getattr(self.model.config, "num_labels", 0))
        outside = [label for label in self.labels if label >= num_labels]
        if outside:
            raise VitPoseError(f"labels {outside} are not in {self.model_id!r}, whose labels are 0..{num_labels - 1}")
        self.id2label: dict[int, str] = {int(k): str(v) for k, v in getattr(self.model.config, "id2label", {}).items()}
        if self.labels == (PERSON_LABEL,):
            # stacklevel 4: past __init__ and its renamed_kwargs wrapper, to the caller
            _check_label_names(self.model_id, {PERSON_LABEL: "person"}, self.id2label, stacklevel=4)
        self.model.to(self.device).eval()

    @classmethod
    def for_animals(cls, **kwargs: Any) -> RTDetrDetector:
        """An RT-DETR keeping COCO's ten animal categories (AP-10K / APT-36K images).

        Labels 14-23 of the RT-DETR COCO checkpoints: bird, cat, dog, horse, sheep, cow, elephant, bear, zebra,
        giraffe. Other keyword arguments as for the constructor; `labels` may not be given.
        """
        if "labels" in kwargs:
            raise TypeError("for_animals sets labels to COCO's animal labels; use RTDetrDetector(labels=...) instead")
        detector = cls(labels=ANIMAL_LABELS, **kwargs)
        _check_label_names(detector.model_id, ANIMAL_LABEL_NAMES, detector.id2label)
        return detector

    def __call__(self, images: Sequence[np.ndarray], names: Sequence[str | None] | None = None) -> list[Detections]:
        """Detect in RGB uint8 (H, W, 3) images; `names` is ignored. Returns one `Detections` per image."""
        from PIL import Image

        images, _ = check_images(images, names)
        wanted = np.asarray(self.labels, dtype=np.int64)
        dtype = getattr(self.model, "dtype", torch.float32)
        out: list[Detections] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            inputs = self.processor(images=[Image.fromarray(image) for image in chunk], return_tensors="pt")
            inputs = {
                key: value.to(self.device, dtype) if value.is_floating_point() else value.to(self.device)
                for key, value in inputs.items()
                if isinstance(value, torch.Tensor)
            }
            with torch.inference_mode():
                outputs = self.model(**inputs)
            sizes = torch.tensor([image.shape[:2] for image in chunk], device=self.device)
            results = self.processor.post_process_object_detection(outputs, threshold=self.det_thr, target_sizes=sizes)
            for result in results:
                labels = result["labels"].cpu().numpy().astype(np.int64)
                keep = np.isin(labels, wanted)
                xyxy = result["boxes"].float().cpu().numpy()[keep]
                boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
                scores = result["scores"].float().cpu().numpy()[keep]
                out.append(Detections.from_detector(boxes, scores, labels[keep]))
        return out

    def __repr__(self) -> str:
        return (
            f"RTDetrDetector(model={self.model_id!r}, det_thr={self.det_thr}, labels={list(self.labels)}, "
            f"device='{self.device}', batch_size={self.batch_size})"
        )


def _check_threshold(det_thr: float) -> float:
    if isinstance(det_thr, bool) or not isinstance(det_thr, int | float) or not 0.0 <= float(det_thr) < 1.0:
        raise VitPoseError(f"det_thr must be a number in [0, 1), got {det_thr!r}")
    return float(det_thr)


def _check_labels(labels: Sequence[int]) -> tuple[int, ...]:
    if isinstance(labels, int) and not isinstance(labels, bool):
        labels = (labels,)
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
        raise VitPoseError(f"labels must be a non-empty list of label ids (0 = person in COCO), got {labels!r}")
    bad = [label for label in labels if isinstance(label, bool) or not isinstance(label, int | np.integer)]
    if bad or any(label < 0 for label in labels):
        raise VitPoseError(f"labels must be non-negative integer label ids (0 = person in COCO), got {list(labels)}")
    return tuple(int(label) for label in labels)


def _check_label_names(
    model: str, expected: Mapping[int, str], id2label: Mapping[int, str], stacklevel: int = 3
) -> None:
    """Warn when the checkpoint names its labels and the expected ids carry other names (another label space)."""
    named = {k: v for k, v in id2label.items() if not _GENERIC_LABEL.match(v)}
    if not named:
        return  # a checkpoint without label names: nothing to check against
    wrong = {k: named.get(k) for k, v in expected.items() if named.get(k, "").lower() != v}
    if wrong:
        where = {v: k for k, v in named.items()}
        hints = ", ".join(f"{expected[k]!r} is {where[expected[k]]}" for k in wrong if expected[k] in where)
        warnings.warn(
            f"{model!r} names its labels differently from the COCO-80 space assumed here: "
            f"{', '.join(f'label {k} is {v!r}, not {expected[k]!r}' for k, v in wrong.items())}"
            f"{' (in this model ' + hints + ')' if hints else ''}; pass labels=[...] in the model's own label ids",
            UserWarning,
            stacklevel=stacklevel,
        )


def _load(model: str, hub_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """(image processor, model): from the local cache first, so that a cached checkpoint needs no connection."""
    from vitpose.hub import is_hub_id

    local = Path(model).is_dir()
    if not local and (Path(model).exists() or not is_hub_id(model)):
        what = "is a file, not a directory" if Path(model).exists() else "is neither a local directory nor a hub id"
        raise DetectorError(
            unavailable_message(
                model,
                f"{model!r} {what}; pass a hub id such as {RTDetrDetector.DEFAULT_MODEL!r} or a directory holding "
                "config.json, model.safetensors and preprocessor_config.json (as save_pretrained writes them)",
            )
        )
    if not local and not hub_kwargs.get("local_files_only"):
        if not hub_offline():
            try:
                return _from_pretrained(model, {**hub_kwargs, "local_files_only": True})
            except DetectorError:
                pass  # not (fully) cached: ask the hub
    return _from_pretrained(model, hub_kwargs)


def _from_pretrained(model: str, hub_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForObjectDetection

    processor_kwargs = {k: v for k, v in hub_kwargs.items() if k in _PROCESSOR_HUB_KEYS}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # transformers' deprecation chatter about processors and configs
            network = AutoModelForObjectDetection.from_pretrained(model, **hub_kwargs)
            processor = AutoImageProcessor.from_pretrained(model, **processor_kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise DetectorError(unavailable_message(model, _first_line(err))) from err
    return processor, network
