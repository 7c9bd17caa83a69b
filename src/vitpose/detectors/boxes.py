"""Boxes that need no detector: given by the user (a COCO detections file, a dict, a list) or the whole image."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitpose.datasets.coco import image_file_names, parse_detection, read_detections, read_json
from vitpose.deprecation import renamed_kwargs
from vitpose.detectors.base import Detections, check_images
from vitpose.errors import AnnotationError, VitPoseError

COCO_PERSON = 1  # COCO's category id of person (1-based, as in COCO files)


class BoxesFileError(AnnotationError):
    """A boxes file (or boxes argument) that cannot be used; the message names the file, the entry and the fault."""


class SkippedBoxesWarning(UserWarning):
    """Entries of a detections file that were skipped because their box cannot hold a person (see
    `skip_degenerate_boxes`)."""


class UnknownImageError(VitPoseError, LookupError):
    """An image that the boxes' annotations file does not list, so whether it has boxes cannot be told.

    A `ValueError` (a complaint about that one input image, which a pipeline can report and go on from) and a
    `LookupError`."""


def basename(name: str | os.PathLike[str]) -> str:
    """The file name of a path, with / or \\ separators: how images are matched to boxes."""
    return str(name).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _as_boxes(value: Any, where: str) -> np.ndarray:
    """(n, 4) float32 of an array-like of [x, y, width, height] rows (one 4-vector is one box)."""
    try:
        boxes = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BoxesFileError(f"{where}: boxes must be numbers [x, y, width, height], got {value!r:.200}") from None
    if boxes.size == 0:
        return np.zeros((0, 4), np.float32)
    if boxes.ndim == 1 and boxes.shape[0] == 4:
        boxes = boxes[None]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise BoxesFileError(f"{where}: boxes must have shape (n, 4) [x, y, width, height], got {boxes.shape}")
    for row, box in enumerate(boxes):
        fault = box_fault(box)
        if fault:
            raise BoxesFileError(f"{where}: box {row} {box.tolist()} {fault} {_XYWH_HINT}")
    return boxes.astype(np.float32)


_XYWH_HINT = "(boxes are [x, y, width, height], not [x1, y1, x2, y2])"


def box_fault(box: Sequence[float]) -> str | None:
    """Why a [x, y, width, height] box cannot hold a person ("is not finite", "has width 0 <= 0", ...), or None."""
    if not all(math.isfinite(v) for v in box):
        return "is not finite"
    if box[2] <= 0:
        return f"has width {box[2]} <= 0"
    if box[3] <= 0:
        return f"has height {box[3]} <= 0"
    return None


def skip_degenerate_boxes(
    boxes: Sequence[Sequence[float]], source: str | os.PathLike[str], *, stacklevel: int = 2
) -> list[bool]:
    """The one policy for the boxes of a detections file (`vitpose predict --boxes`, `vitpose eval --detections`)
    that cannot hold a person: an entry whose box is not finite or has width or height <= 0 is skipped, and one
    `SkippedBoxesWarning` names the file, how many entries were skipped, the first five by index and why.

    Args:
        boxes: each entry's [x, y, width, height], in file order (four numbers each: a malformed entry is the
            caller's error to raise).
        source: the file, for the warning.
        stacklevel: of the warning, counted as by `warnings.warn` called here (2: the caller of this function).

    Returns:
        One flag per entry: False for the skipped ones.
    """
    faults = [(index, list(box), fault) for index, box in enumerate(boxes) if (fault := box_fault(box))]
    if faults:
        first = ", ".join(f"entry {index} {box} {fault}" for index, box, fault in faults[:5])
        more = f", and {len(faults) - 5} more" if len(faults) > 5 else ""
        warnings.warn(
            f"{source}: skipped {len(faults)} of {len(boxes)} detections whose box cannot hold a person: "
            f"{first}{more} {_XYWH_HINT}",
            SkippedBoxesWarning,
            stacklevel=stacklevel,
        )
    skipped = {index for index, _, _ in faults}
    return [index not in skipped for index in range(len(boxes))]


def _as_vector(value: Any, n: int, where: str, what: str, dtype: Any) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise BoxesFileError(f"{where}: {what} must be numbers, got {value!r:.200}") from None
    if array.shape != (n,):
        raise BoxesFileError(f"{where}: {n} boxes but {array.size} {what}")
    if not np.isfinite(array).all():
        raise BoxesFileError(f"{where}: {what} must be finite, got {array.tolist()}")
    if dtype is np.int64 and not (array % 1 == 0).all():
        raise BoxesFileError(f"{where}: {what} must be integers, got {array.tolist()}")
    return array.astype(dtype)


class BoxesDetector:
    """Boxes given by the user, by image file name or by position.

    Args:
        boxes: either a mapping from image file name to an (n, 4) array-like of COCO [x, y, width, height] boxes
            (names are matched by basename, so "val2017/a.jpg" and "a.jpg" are the same image), or a sequence
            with one (n, 4) array-like per image, consumed in order across calls: the k-th image this detector
            is called on (counting over all calls) gets `boxes[k]`; `reset()` starts again from the first.
        scores: the boxes' scores, in the same structure (mapping or sequence of (n,) arrays); None: all 1.
        labels: the boxes' labels, likewise; None: all 1 (COCO's person category).
        image_names: in name mode, the file names of all the images the boxes cover (e.g. a COCO annotations
            file's images). An image in it without boxes has none; an image not in it raises
            `UnknownImageError` naming it. None: any image without an entry has no boxes.
        source: where the boxes came from, for messages.

    Raises:
        BoxesFileError: a box that is not finite or has width or height <= 0, mismatched scores, ... (named).
    """

    def __init__(
        self,
        boxes: Mapping[str, Any] | Sequence[Any],
        scores: Mapping[str, Any] | Sequence[Any] | None = None,
        labels: Mapping[str, Any] | Sequence[Any] | None = None,
        *,
        image_names: Collection[str] | None = None,
        source: str = "boxes",
    ) -> None:
        self.source = source
        self._position = 0
        if isinstance(boxes, np.ndarray) or isinstance(boxes, str) or not isinstance(boxes, Mapping | Sequence):
            raise TypeError(
                "BoxesDetector takes a dict {file name: (n, 4) boxes} or a list with one (n, 4) array of boxes per "
                f"image, got {type(boxes).__name__}" + (f" of shape {boxes.shape}" if hasattr(boxes, "shape") else "")
            )
        self.by_name = isinstance(boxes, Mapping)
        keys = list(boxes.keys()) if self.by_name else list(range(len(boxes)))
        extras = {"scores": scores, "labels": labels}
        for what, value in extras.items():
            if value is None:
                continue
            if self.by_name != isinstance(value, Mapping) or isinstance(value, str | np.ndarray):
                raise TypeError(f"{what} must be given like boxes: a dict by file name or a list by position")
            if len(value) != len(keys) or (self.by_name and set(value) != set(boxes)):
                raise BoxesFileError(f"{source}: {what} must have one entry per entry of boxes ({len(keys)})")
        self._entries: dict[Any, Detections] = {}
        for key in keys:
            where = f"{source}, image {key!r}" if self.by_name else f"{source}, image {key}"
            array = _as_boxes(boxes[key], where)
            n = len(array)
            score = np.ones(n, np.float32)
            if scores is not None:
                score = _as_vector(scores[key], n, where, "scores", np.float32)
            label = np.full(n, COCO_PERSON, np.int64)
            if labels is not None:
                label = _as_vector(labels[key], n, where, "labels", np.int64)
            name = basename(key) if self.by_name else key
            if name in self._entries:
                raise BoxesFileError(f"{source}: two entries for the image file name {name!r} ({key!r})")
            self._entries[name] = Detections(array, score, label)
        self.image_names = None if image_names is None else {basename(name) for name in image_names}
        if self.by_name and self.image_names is not None:
            unlisted = sorted(set(self._entries) - self.image_names)
            if unlisted:
                raise BoxesFileError(f"{source}: boxes for images that are not listed among its images: {unlisted[:5]}")

    @classmethod
    @renamed_kwargs(score_threshold="det_thr")
    def from_json(
        cls,
        path: str | os.PathLike[str],
        annotations: str | os.PathLike[str] | None = None,
        det_thr: float = 0.0,
        category_ids: Sequence[int] | None = (COCO_PERSON,),
    ) -> BoxesDetector:
        """Boxes from a COCO detections (results) file.

        The file is a JSON list of `{"image_id", "category_id", "bbox": [x, y, w, h], "score"}` entries, optionally
        with "file_name". Entries are matched to images by "file_name" (basename) when they have it; otherwise
        `image_id` is mapped to a file name through `annotations`, a COCO annotations file (its "images" list of
        {"id", "file_name"}). Every entry with `score >= det_thr` and (unless `category_ids` is None) a
        category in `category_ids` is kept, as the COCO evaluation keeps every detection; a missing "score" counts
        as 1 and a missing "category_id" as person (1). Boxes keep the file's order; labels are the category ids.

        An entry whose box cannot hold a person (not finite, width or height <= 0) is skipped, with one
        `SkippedBoxesWarning` saying which (`skip_degenerate_boxes`, the policy `vitpose eval --detections` shares).

        Matching: in file-name mode an image the file does not mention has no boxes (the detector found nobody);
        with `annotations`, an image listed there without detections has none, and an image not listed there
        raises `UnknownImageError` when the detector is called on it.

        Raises:
            BoxesFileError: unreadable or malformed files (not JSON, not a list, an entry without a bbox of four
                numbers, ..., named by entry index), or entries by image_id without `annotations`.
        """
        path = Path(path)
        entries, _ = read_detections(path, error=BoxesFileError)  # the one reader: a JSON list, or a clear error
        if not isinstance(det_thr, int | float) or not math.isfinite(det_thr):
            raise VitPoseError(f"det_thr must be a number, got {det_thr!r}")
        if isinstance(category_ids, int):
            category_ids = (category_ids,)
        if category_ids is not None:
            category_ids = {int(c) for c in category_ids}
        by_file = any(isinstance(entry, Mapping) and "file_name" in entry for entry in entries)
        parsed = [_parse_entry(entry, index, path, by_file) for index, entry in enumerate(entries)]
        # stacklevel 4: past this function and the renamed_kwargs wrapper, to the caller of from_json
        usable = skip_degenerate_boxes([entry["bbox"] for entry in entries], path, stacklevel=4)  # as written
        id_to_name = None
        if annotations is not None:
            id_to_name = read_image_names(annotations)
        elif entries and not by_file:
            raise BoxesFileError(
                f"{path} gives boxes by image_id only (no 'file_name' in its entries): pass the COCO annotations file "
                "whose 'images' map those ids to file names (--annotations FILE, or annotations=...)"
            )
        if not entries:
            warnings.warn(f"{path} holds no detections: every image will have no boxes", UserWarning, stacklevel=3)

        boxes: dict[str, list[list[float]]] = {}
        scores: dict[str, list[float]] = {}
        labels: dict[str, list[int]] = {}
        for index, (entry, (name, box, score, category)) in enumerate(zip(entries, parsed, strict=True)):
            if not by_file:
                assert id_to_name is not None
                key = _id_key(entry["image_id"])
                if key not in id_to_name:
                    raise BoxesFileError(
                        f"{path}: entry {index}: image_id {entry['image_id']!r} is not among the images of "
                        f"{annotations} (is it the annotations file these detections were made for?)"
                    )
                name = id_to_name[key]
            assert name is not None
            name = basename(name)
            boxes.setdefault(name, [])
            scores.setdefault(name, [])
            labels.setdefault(name, [])
            if usable[index] and score >= det_thr and (category_ids is None or category in category_ids):
                boxes[name].append(box)
                scores[name].append(score)
                labels[name].append(category)
        return cls(
            boxes,
            scores,
            labels,
            image_names=None if id_to_name is None else list(id_to_name.values()),
            source=str(path),
        )

    def reset(self) -> None:
        """Start positional boxes again from the first image."""
        self._position = 0

    def __call__(self, images: Sequence[np.ndarray], names: Sequence[str | None] | None = None) -> list[Detections]:
        """The given boxes of each RGB uint8 (H, W, 3) image, looked up by `names` (name mode) or by position.

        Raises:
            ValueError: name mode without a name for an image; more images than positional box lists.
            UnknownImageError: (name mode with annotations) an image the annotations do not list.
        """
        images, names = check_images(images, names)
        if not self.by_name:
            end = self._position + len(images)
            if end > len(self._entries):
                raise VitPoseError(
                    f"{self.source}: boxes were given for {len(self._entries)} images by position, but images "
                    f"{self._position}..{end - 1} were asked for (call reset() to start again from the first)"
                )
            out = [self._entries[k] for k in range(self._position, end)]
            self._position = end
            return [Detections(d.boxes.copy(), d.scores.copy(), d.labels.copy()) for d in out]
        out = []
        for i, name in enumerate(names):
            if name is None:
                raise VitPoseError(
                    f"{self.source} gives boxes by image file name, but image {i} has no name: pass names=[...]"
                )
            key = basename(name)
            found = self._entries.get(key)
            if found is not None:
                out.append(Detections(found.boxes.copy(), found.scores.copy(), found.labels.copy()))
            elif self.image_names is None or key in self.image_names:
                out.append(Detections.empty())
            else:
                raise UnknownImageError(
                    f"{name}: no boxes for this image: {key!r} is not among the {len(self.image_names)} images of "
                    f"the annotations of {self.source}"
                )
        return out

    def __repr__(self) -> str:
        mode = "by file name" if self.by_name else "by position"
        return f"BoxesDetector({len(self._entries)} images {mode}, source={self.source!r})"


class FullImageDetector:
    """One box covering each whole image, [0, 0, W, H] with score 1 and label 0: for images that are already crops
    of one person (or animal)."""

    def __call__(self, images: Sequence[np.ndarray], names: Sequence[str | None] | None = None) -> list[Detections]:
        """One (1, 4) box [0, 0, width, height] per RGB uint8 (H, W, 3) image."""
        images, _ = check_images(images, names)
        return [
            Detections(
                np.array([[0.0, 0.0, image.shape[1], image.shape[0]]], np.float32),
                np.ones(1, np.float32),
                np.zeros(1, np.int64),
            )
            for image in images
        ]

    def __repr__(self) -> str:
        return "FullImageDetector()"


def _read_json(path: Path, what: str) -> Any:
    """The one COCO reader (`vitpose.datasets.coco.read_json`), raising `BoxesFileError`."""
    return read_json(path, what, expected=f"a COCO JSON {what} file", error=BoxesFileError)


def _id_key(image_id: Any) -> Any:
    """Image ids compared as ints where they are integral (785, 785.0 and "785" are the same image)."""
    if isinstance(image_id, bool):
        return image_id
    if isinstance(image_id, float) and image_id.is_integer():
        return int(image_id)
    if isinstance(image_id, str) and image_id.strip().lstrip("-").isdigit():
        return int(image_id)
    return image_id


def read_image_names(path: str | os.PathLike[str]) -> dict[Any, str]:
    """image id -> file name (basename) of a COCO annotations file's "images" (ids compared as ints where integral).

    The file is read by the one COCO reader (`vitpose.datasets.coco.image_file_names`); boxes are matched to images
    by file name, so names must also be unique here.

    Raises:
        BoxesFileError: not a COCO annotations file, an image without id or file_name, a repeated id or file name.
    """
    path = Path(path)
    out: dict[Any, str] = {}
    names: dict[str, Any] = {}
    for index, (image_id, file_name) in enumerate(image_file_names(path, error=BoxesFileError).items()):
        key, name = _id_key(image_id), basename(file_name)
        if key in out:
            raise BoxesFileError(f"{path}: images[{index}]: image id {image_id!r} appears twice")
        if name in names:
            raise BoxesFileError(
                f"{path}: images[{index}]: two images share the file name {name!r} (ids {names[name]!r} and "
                f"{image_id!r}); images are matched by file name, so it must be unique"
            )
        out[key] = name
        names[name] = image_id
    return out


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return _real(value) and math.isfinite(value)


def _parse_entry(entry: Any, index: int, path: Path, by_file: bool) -> tuple[str | None, list[float], float, int]:
    """(file name or None, bbox, score, category) of one detections entry (`vitpose.datasets.coco.parse_detection`,
    the one parser), or a BoxesFileError naming it. In a file matched by name every entry needs its file name."""
    det = parse_detection(entry, index, str(path), error=BoxesFileError)
    if by_file and det.file_name is None:
        raise BoxesFileError(
            f"{path}: entry {index} has no 'file_name' string ({entry.get('file_name')!r}) while other entries have "
            "one: give every entry its file_name, or none (then image_id with --annotations)"
        )
    return (det.file_name if by_file else None), list(det.bbox), det.score, det.category_id
