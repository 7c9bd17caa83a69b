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


# How a boxes entry's file name is matched to an input image (see `match_names`): the same file (both resolved)
# beats any number of trailing path parts in common, which beats the base name alone.
_SAME_FILE = 1 << 30


def _parts(name: str | os.PathLike[str]) -> tuple[str, ...]:
    """The parts of a path written with / or \\ separators, without empty and "." parts (a drive stays a part)."""
    return tuple(part for part in str(name).replace("\\", "/").split("/") if part not in ("", "."))


def _normalised(name: str | os.PathLike[str]) -> str:
    """The name with / separators and without empty or "." parts: two entries with one such name are one image."""
    lead = "/" if str(name).replace("\\", "/").startswith("/") else ""
    return lead + "/".join(_parts(name))


def _resolved(name: str | os.PathLike[str]) -> str:
    """The absolute path with symbolic links resolved (the path itself where it cannot be resolved)."""
    try:
        return os.path.realpath(os.path.abspath(os.fspath(name)))
    except (OSError, ValueError):
        return str(name)


def _common_tail(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


class _Input:
    """An input image's name as the matcher sees it: its resolved path and the parts of its path."""

    def __init__(self, name: str | os.PathLike[str]) -> None:
        self.name = str(name)
        self.resolved = _resolved(name)
        given = _parts(os.path.abspath(os.fspath(name))) if _is_pathlike(name) else _parts(name)
        self.variants = {given, _parts(self.resolved)}

    def score(self, entry: str, entry_resolved: str) -> int:
        """How specifically `entry` names this input: _SAME_FILE, else the trailing path parts in common (1: the
        base name only; 0: another file)."""
        if entry_resolved == self.resolved:
            return _SAME_FILE
        parts = _parts(entry)
        return max(_common_tail(parts, variant) for variant in self.variants)


def _is_pathlike(name: Any) -> bool:
    try:
        os.fspath(name)
    except TypeError:
        return False
    return True


def match_names(
    entries: Collection[str], inputs: Sequence[str | os.PathLike[str]], source: str = "boxes"
) -> dict[str, str | None]:
    """Share the file names of a boxes file's entries out among the input images: input -> its entry (None: none).

    The rule (the most specific key available wins):

    1. an entry whose file name, resolved (relative names from the current folder), is the input's file;
    2. else the entry with the most trailing path parts in common with the input's path ("cam1/x.jpg" names
       ".../cam1/x.jpg" and not ".../cam2/x.jpg", which shares only the base name);
    3. the base name alone ("x.jpg") only where that is unambiguous.

    Each entry goes to the input it names most specifically, and each input takes the most specific of the
    entries that went to it. `vitpose predict` writes the full input paths in its predictions.json `file_name`, so
    its output, fed back with `--boxes`, gives each image its own boxes.

    Raises:
        BoxesFileError: an entry that names two inputs equally well (the base name "x.jpg" of "cam1/x.jpg" and
            "cam2/x.jpg": which one's boxes they are cannot be told), or two entries that name one input equally
            well; the message names the entry and the candidates and says what to do.
    """
    return _NameIndex(entries).match(inputs, source)


class _NameIndex:
    """The entries' file names, indexed by base name and by resolved path, for `match_names`."""

    def __init__(self, entries: Collection[str]) -> None:
        self.by_base: dict[str, list[tuple[str, str]]] = {}
        self.by_file: dict[str, list[tuple[str, str]]] = {}
        for entry in entries:
            resolved = _resolved(entry) if _is_pathlike(entry) else str(entry)
            parts = _parts(entry)
            if parts:
                self.by_base.setdefault(parts[-1], []).append((entry, resolved))
            self.by_file.setdefault(resolved, []).append((entry, resolved))

    def match(self, inputs: Sequence[str | os.PathLike[str]], source: str) -> dict[str, str | None]:
        by_file: dict[str, list[_Input]] = {}
        for name in inputs:
            image = _Input(name)
            by_file.setdefault(image.resolved, []).append(image)  # one file given twice is one image
        # entry -> (its best score, the inputs it names that well)
        best: dict[str, tuple[int, list[_Input]]] = {}
        for group in by_file.values():
            image = group[0]
            candidates = dict(self.by_file.get(image.resolved, []))
            for base in {variant[-1] for variant in image.variants if variant}:
                candidates.update(self.by_base.get(base, []))
            for entry, resolved in candidates.items():
                score = image.score(entry, resolved)
                if score == 0:
                    continue
                top, chosen = best.get(entry, (0, []))
                if score > top:
                    best[entry] = (score, [image])
                elif score == top:
                    chosen.append(image)
        received: dict[str, list[tuple[int, str]]] = {}
        for entry, (score, chosen) in best.items():
            if len(chosen) > 1:
                names = ", ".join(image.name for image in chosen[:5]) + (", ..." if len(chosen) > 5 else "")
                how = "base name" if score == 1 else f"last {score} path parts"
                raise BoxesFileError(
                    f"{source}: the entry for {entry!r} matches {len(chosen)} input images by its {how} ({names}): "
                    "which image its boxes belong to cannot be told. Give the entries' file_name as paths that tell "
                    "the images apart (vitpose predict writes the input paths), or pass the images one folder at a time"
                )
            received.setdefault(chosen[0].resolved, []).append((score, entry))
        out: dict[str, str | None] = {}
        for resolved, group in by_file.items():
            got = received.get(resolved, [])
            top_score = max((score for score, _ in got), default=0)
            top = [entry for score, entry in got if score == top_score]
            if len(top) > 1:
                raise BoxesFileError(
                    f"{source}: {len(top)} entries name the input image {group[0].name} equally well "
                    f"({', '.join(map(repr, top[:5]))}): give the entries' file_name as paths that tell them apart"
                )
            for image in group:
                out[image.name] = top[0] if top else None
        return out


def _as_boxes(value: Any, where: str) -> np.ndarray:
    """(n, 4) float32 of an array-like of [x, y, width, height] rows (one 4-vector is one box)."""
    try:
        boxes = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
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


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _as_float(value: Any) -> float:
    """float(value), with integers too large for a float (JSON allows 1e400 written as digits) as +-inf."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def box_fault(box: Sequence[float], score: float | None = None) -> str | None:
    """Why a [x, y, width, height] box (and its score) cannot hold a person ("is not finite", "has width 0 <= 0",
    "has score nan", ...), or None. Values beyond float32's range (about 3.4e38) count as not finite: boxes and
    scores are float32 from here on, where they would be inf."""
    x, y, w, h = (_as_float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return "is not finite"
    if max(abs(x), abs(y), abs(w), abs(h), abs(x + w), abs(y + h)) > _FLOAT32_MAX:
        return "is too large (beyond float32)"
    if box[2] <= 0:
        return f"has width {box[2]} <= 0"
    if box[3] <= 0:
        return f"has height {box[3]} <= 0"
    score = None if score is None else _as_float(score)
    if score is not None and not (math.isfinite(score) and abs(score) <= _FLOAT32_MAX):
        return f"has score {score} (not a finite float32 number)"
    return None


def skip_degenerate_boxes(
    boxes: Sequence[Sequence[float]],
    source: str | os.PathLike[str],
    *,
    scores: Sequence[float] | None = None,
    stacklevel: int = 2,
) -> list[bool]:
    """The one policy for the boxes of a detections file (`vitpose predict --boxes`, `vitpose eval --detections`)
    that cannot hold a person: an entry whose box is not finite (or beyond float32's range) or has width or height
    <= 0, or whose score is NaN or infinite, is skipped, and one `SkippedBoxesWarning` names the file, how many
    entries were skipped, the first five by index and why. (A NaN score would otherwise become the pose's score
    and make the results file invalid JSON.)

    Args:
        boxes: each entry's [x, y, width, height], in file order (four numbers each: a malformed entry is the
            caller's error to raise).
        source: the file, for the warning.
        scores: each entry's score, or None (not checked).
        stacklevel: of the warning, counted as by `warnings.warn` called here (2: the caller of this function).

    Returns:
        One flag per entry: False for the skipped ones.
    """
    given = [None] * len(boxes) if scores is None else list(scores)
    faults = [
        (index, list(box), fault)
        for index, (box, score) in enumerate(zip(boxes, given, strict=True))
        if (fault := box_fault(box, score))
    ]
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


# A box more than this many times the image's larger side (in width or height) shows the image as a speck of a
# pixel or two in the network's crop: nothing can be found in it, and its keypoints may overflow float32.
MAX_BOX_TO_IMAGE = 100.0


def usable_boxes(
    boxes: Any, scores: Any, image_size: tuple[int, int], image: str, *, stacklevel: int = 2
) -> np.ndarray:
    """Which boxes of one image the estimator crops: the check of the boxes given to `PoseEstimator` (by the
    caller or by a detector) before any crop is made.

    - A box that is not finite, beyond float32's range, or has width or height <= 0, or a score that is NaN or
      infinite: a `VitPoseError` naming the image and the box (boxes passed in code are the caller's to fix; a
      boxes file's such entries are skipped earlier, by `skip_degenerate_boxes`).
    - A box entirely outside the image (no pixel of the image in it), or more than `MAX_BOX_TO_IMAGE` times the
      image's size: skipped, with one `SkippedBoxesWarning` per image naming the image and the boxes. Its crop
      would be the zero padding (or a speck of the image), and its "pose" garbage.

    Args:
        boxes: (n, 4) [x, y, width, height] in pixels.
        scores: (n,) their scores.
        image_size: (width, height).
        image: the image's name, for messages.

    Returns:
        (n,) bool: True for the boxes to use.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    for row, (box, score) in enumerate(zip(boxes.tolist(), scores.tolist(), strict=False)):
        fault = box_fault(box, score)
        if fault:
            hint = "" if fault.startswith("has score") else f" {_XYWH_HINT}"
            raise VitPoseError(f"{image}: box {row} {box} (score {score}) {fault}{hint}")
    misfits = box_misfits(boxes, image_size)
    if misfits:
        width, height = image_size
        shown = ", ".join(
            f"box {row} {[round(v, 2) for v in boxes[row].tolist()]} ({reason})" for row, reason in misfits[:5]
        )
        more = f", and {len(misfits) - 5} more" if len(misfits) > 5 else ""
        warnings.warn(
            f"{image}: skipped {len(misfits)} of {len(boxes)} boxes that do not fit the {width}x{height} image: "
            f"{shown}{more}; they give no pose (boxes are [x, y, width, height] in the image's pixels)",
            SkippedBoxesWarning,
            stacklevel=stacklevel,
        )
    keep = np.ones(len(boxes), bool)
    keep[[row for row, _ in misfits]] = False
    return keep


def box_misfits(boxes: Any, image_size: tuple[int, int]) -> list[tuple[int, str]]:
    """The boxes `usable_boxes` skips, as (row, reason): entirely outside the image, or more than
    `MAX_BOX_TO_IMAGE` times its size. `boxes`: (n, 4) finite [x, y, width, height]; `image_size`: (width, height)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    width, height = image_size
    side = max(width, height)
    x, y, w, h = boxes.T
    outside = (x >= width) | (y >= height) | (x + w <= 0) | (y + h <= 0)
    huge = (w > MAX_BOX_TO_IMAGE * side) | (h > MAX_BOX_TO_IMAGE * side)
    return [
        (int(row), "outside the image" if outside[row] else f"over {MAX_BOX_TO_IMAGE:g} times the image")
        for row in np.flatnonzero(outside | huge)
    ]


def _as_vector(value: Any, n: int, where: str, what: str, dtype: Any) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        raise BoxesFileError(f"{where}: {what} must be numbers, got {value!r:.200}") from None
    if array.shape != (n,):
        raise BoxesFileError(f"{where}: {n} boxes but {array.size} {what}")
    if not np.isfinite(array).all() or (np.abs(array) > _FLOAT32_MAX).any():
        raise BoxesFileError(f"{where}: {what} must be finite, got {array.tolist()}")
    if dtype is np.int64 and (not (array % 1 == 0).all() or (np.abs(array) >= 2**63).any()):
        raise BoxesFileError(f"{where}: {what} must be integers, got {array.tolist()}")
    return array.astype(dtype)


class BoxesDetector:
    """Boxes given by the user, by image file name or by position.

    Args:
        boxes: either a mapping from image file name to an (n, 4) array-like of COCO [x, y, width, height] boxes
            (names are matched to the images by `match_names`: the same file, else the most trailing path parts
            in common, else the base name where that is unambiguous), or a sequence
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
            name = _normalised(key) if self.by_name else key
            if name in self._entries:
                raise BoxesFileError(f"{source}: two entries for the image file name {name!r} ({key!r})")
            self._entries[name] = Detections(array, score, label)
        self.image_names = None if image_names is None else {_normalised(name) for name in image_names}
        if self.by_name and self.image_names is not None:
            listed = {basename(name) for name in self.image_names}
            unlisted = sorted(name for name in self._entries if basename(name) not in listed)
            if unlisted:
                raise BoxesFileError(f"{source}: boxes for images that are not listed among its images: {unlisted[:5]}")
            given = {basename(name) for name in self._entries}
            for name in self.image_names:  # listed without boxes: the detector found nobody there
                if basename(name) not in given:
                    self._entries[name] = Detections.empty()
        self._matched: dict[str, str | None] = {}  # input name -> entry, from check_inputs and earlier calls
        self._index = _NameIndex(list(self._entries) if self.by_name else [])

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
        usable = skip_degenerate_boxes(
            [entry["bbox"] for entry in entries], path, scores=[score for _, _, score, _ in parsed], stacklevel=4
        )  # the boxes as written
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
        for i, name in enumerate(names):
            if name is None:
                raise VitPoseError(
                    f"{self.source} gives boxes by image file name, but image {i} has no name: pass names=[...]"
                )
        new = [name for name in dict.fromkeys(names) if name not in self._matched]
        if new:
            self._matched.update(self._index.match(new, self.source))
        out = []
        for name in names:
            key = self._matched[name]
            if key is not None:
                found = self._entries[key]
                out.append(Detections(found.boxes.copy(), found.scores.copy(), found.labels.copy()))
            elif self.image_names is None:
                out.append(Detections.empty())  # not mentioned: the detector found nobody there
            else:
                raise UnknownImageError(
                    f"{name}: no boxes for this image: {basename(name)!r} is not among the {len(self.image_names)} "
                    f"images of the annotations of {self.source}"
                )
        return out

    def check_inputs(self, inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
        """Match the entries to all the input images at once, before any model work (what `vitpose predict` does).

        With every input known, an entry that names two of them equally well (the same base name in two folders)
        is found here, and each input keeps the entry `match_names` gives it for the rest of the run (later calls
        with these names use it).

        Returns:
            The inputs that no entry names. Without annotations they have no boxes (a detector writes no entry for
            an image where it found nobody, as predict's predictions.json); a `UserWarning` names them. With
            annotations they are not among its images: a `UserWarning` names them, and each is then reported as
            an `UnknownImageError` when its turn comes.

        Raises:
            BoxesFileError: an ambiguous entry (see `match_names`); or entries of which none names any input (the
                file is for other images: the message shows a few of each).
        """
        if not self.by_name:
            if len(inputs) != len(self._entries):
                raise BoxesFileError(
                    f"{self.source}: boxes were given for {len(self._entries)} images by position, but there are "
                    f"{len(inputs)} images: give one list of boxes per image"
                )
            return []
        names = [str(name) for name in inputs]
        self._matched.update(self._index.match(names, self.source))
        missing = [name for name in names if self._matched[name] is None]
        if missing and len(missing) == len(names) and any(len(d) for d in self._entries.values()):
            entries = ", ".join(repr(key) for key in list(self._entries)[:3])
            raise BoxesFileError(
                f"{self.source}: none of its {len(self._entries)} image file names matches any of the {len(names)} "
                f"input images (its entries name {entries}, ...; the inputs are {', '.join(names[:3])}, ...): pass the "
                "boxes file made for these images, or the images it was made for"
            )
        if missing:
            shown = ", ".join(missing[:5]) + (f", and {len(missing) - 5} more" if len(missing) > 5 else "")
            if self.image_names is None:
                why = "they are taken to have nobody in them (no boxes, no poses)"
            else:
                why = "they are not among the images of its annotations and will be reported as failed"
            warnings.warn(
                f"{self.source} has no entry for {len(missing)} of the {len(names)} input images ({shown}): {why}",
                UserWarning,
                stacklevel=2,
            )
        return missing

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
