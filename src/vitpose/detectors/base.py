"""What every detector returns (`Detections`), what a detector is (`PersonDetector`), and checks shared by them."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vitpose.errors import DetectorError, VitPoseError


@dataclass
class Detections:
    """The boxes a detector found in one image.

    Attributes:
        boxes: (n, 4) float32 COCO [x, y, width, height] in image pixels. Boxes are not clipped to the image: a
            detector's box may reach slightly past its border, as the detector gave it.
        scores: (n,) float32 detector confidences.
        labels: (n,) int64 categories in the detector's label space (person = 0 for the COCO-80 detectors RT-DETR
            and HOG; `BoxesDetector` keeps the COCO `category_id` of its file, person = 1).

    Construction checks the shapes and that every box is finite with width > 0 and height > 0, and raises
    `ValueError` naming the row otherwise. Detectors build theirs with `Detections.from_detector`, which instead
    drops such rows: a zero-area or non-finite box of a detector is not a person, so nothing is lost.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        boxes = _numeric(self.boxes, "boxes", np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        scores = _numeric(self.scores, "scores", np.float32)
        labels = np.asarray(self.labels)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise VitPoseError(f"Detections.boxes must have shape (n, 4) [x, y, width, height], got {boxes.shape}")
        n = len(boxes)
        if scores.shape != (n,):
            raise VitPoseError(f"Detections.scores must have shape ({n},) for {n} boxes, got {np.shape(self.scores)}")
        if labels.size == 0:
            labels = labels.reshape(-1).astype(np.int64)
        if labels.shape != (n,):
            raise VitPoseError(f"Detections.labels must have shape ({n},) for {n} boxes, got {labels.shape}")
        integral = labels.dtype.kind in "iu" or (
            labels.dtype.kind == "f" and bool(np.isfinite(labels).all()) and bool((labels % 1 == 0).all())
        )
        if not integral:
            raise VitPoseError(f"Detections.labels must be integers, got {labels.dtype}: {labels[:5]}")
        bad = _bad_rows(boxes, scores)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise VitPoseError(
                f"Detections: box {row} {boxes[row].tolist()} (score {scores[row]}) is not finite or has width or "
                f"height <= 0; boxes are [x, y, width, height] with width > 0 and height > 0 "
                f"({int(bad.sum())} such rows of {n})"
            )
        self.boxes = np.ascontiguousarray(boxes, dtype=np.float32)
        self.scores = np.ascontiguousarray(scores, dtype=np.float32)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)

    @classmethod
    def from_detector(cls, boxes: Any, scores: Any, labels: Any) -> Detections:
        """Detections of a detector's raw output, dropping rows that are not finite or have width or height <= 0.

        Args:
            boxes: (n, 4) [x, y, width, height].
            scores: (n,).
            labels: (n,) integers.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(labels).reshape(-1)
        if len(scores) == len(boxes) == len(labels):
            keep = ~_bad_rows(boxes, scores)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        return cls(boxes, scores, labels)

    @classmethod
    def empty(cls) -> Detections:
        """No boxes: (0, 4), (0,), (0,)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def xyxy(self) -> np.ndarray:
        """(n, 4) float32 [x1, y1, x2, y2]."""
        out = self.boxes.copy()
        out[:, 2:] += out[:, :2]
        return out


def _numeric(value: Any, name: str, dtype: Any) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise VitPoseError(f"Detections.{name} must be numbers, got {type(value).__name__}: {err}") from None


def _bad_rows(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(n,) bool: rows with a non-finite value or width or height <= 0."""
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    return ~finite | ~(boxes[:, 2] > 0) | ~(boxes[:, 3] > 0)


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that finds the boxes to estimate poses in.

    `detector(images, names)` takes RGB uint8 (H, W, 3) images and, where known, their file names (used by
    `BoxesDetector`; others ignore them), and returns one `Detections` per image, in order.
    """

    def __call__(self, images: Sequence[np.ndarray], names: Sequence[str | None] | None = None) -> list[Detections]:
        """One `Detections` per image."""
        ...


def check_detector(detector: Any) -> PersonDetector:
    """`detector` itself when it can be called as `detector(images, names)`; a `DetectorError` saying why not."""
    if not callable(detector):
        raise DetectorError(
            f"a {type(detector).__name__} is not a person detector: pass a detector name ('auto', 'rtdetr', 'hog', "
            "'full-image') or an object called as detector(images, names) -> one Detections per image"
        )
    try:
        signature = inspect.signature(detector)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check
        return detector
    try:
        signature.bind([], None)
    except TypeError:
        raise DetectorError(
            f"the detector {detector!r} cannot be called as detector(images, names) (its signature is "
            f"{signature}): a person detector takes the list of images and their file names (or None)"
        ) from None
    return detector


def check_images(
    images: Sequence[np.ndarray], names: Sequence[str | None] | None = None
) -> tuple[list[np.ndarray], list[str | None]]:
    """The images as a list of RGB uint8 (H, W, 3) arrays and the names as a list of the same length.

    Raises `TypeError`/`ValueError` saying which image is wrong and how.
    """
    if isinstance(images, np.ndarray):
        raise TypeError(
            f"detectors take a list of images, got one array of shape {images.shape}: pass [image] for a single image"
        )
    if not isinstance(images, Sequence) or isinstance(images, str | bytes):
        raise TypeError(f"detectors take a list of RGB uint8 (H, W, 3) arrays, got {type(images).__name__}")
    out = []
    for i, image in enumerate(images):
        if not isinstance(image, np.ndarray):
            raise TypeError(
                f"image {i} is a {type(image).__name__}; detectors take numpy RGB uint8 arrays of shape (H, W, 3) "
                "(np.asarray(pil_image.convert('RGB')))"
            )
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
            raise VitPoseError(
                f"image {i} is a {image.dtype} array of shape {image.shape}; detectors take RGB uint8 arrays of shape "
                "(H, W, 3) (convert grey or RGBA images to RGB, and float images to 0-255 uint8)"
            )
        out.append(image)
    if names is None:
        return out, [None] * len(out)
    if isinstance(names, str) or not isinstance(names, Sequence) or len(names) != len(out):
        got = f"a {type(names).__name__}" if isinstance(names, str) or not isinstance(names, Sequence) else len(names)
        raise VitPoseError(f"names must be a list with one name (or None) per image: {len(out)} images, got {got}")
    return out, list(names)
