"""Frames in (video files, image sequences, cameras, arrays) and results out (annotated video, JSON Lines).

Everything streams: a source yields one `Frame` at a time, and the writers write each frame as it comes, so memory
does not grow with the length of a video.

- `open_video(source)`: a video file (anything OpenCV's FFmpeg reads: .mp4, .avi, .mov, .mkv, .webm, ...), a folder
  or glob pattern of images (an image sequence, in natural order: frame2 before frame10), a single image, a camera
  index (``0`` or ``"0"``), or any iterable of RGB arrays.
- `VideoWriter`: an annotated video through `cv2.VideoWriter`, the codec chosen by the file's suffix (mp4v for .mp4,
  .m4v, .mov and .mkv; MJPG for .avi; VP8 for .webm).
- `JsonlWriter`: one JSON object per line, each written whole and flushed, so an interrupted run leaves only
  complete lines.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vitpose.errors import ImageReadError, OutputError, VitPoseError
from vitpose.media import IMAGE_SUFFIXES, images_in_folder, is_image_file, is_pattern, load_image, match_pattern
from vitpose.outputs import InputFiles

__all__ = [
    "VIDEO_SUFFIXES",
    "WRITER_CODECS",
    "ArraySource",
    "CameraSource",
    "Frame",
    "ImageSequenceSource",
    "JsonlWriter",
    "VideoFileSource",
    "VideoReadWarning",
    "VideoSource",
    "VideoWriter",
    "open_video",
    "writer_codec",
]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp")
WRITER_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}
DEFAULT_FPS = 30.0


class VideoReadWarning(UserWarning):
    """Reading stopped before the end the source announced (a truncated or corrupt file, a camera that stopped)."""


@dataclass
class Frame:
    """One frame of a source.

    Attributes:
        index: its position in the source (0-based; for image sequences, the image's position in the sorted list,
            so a skipped unreadable image leaves a gap).
        timestamp: seconds from the start: index / fps for files and sequences, wall-clock time for cameras.
        image: (H, W, 3) uint8 RGB.
        file_name: the image's path for image sequences, else None.
    """

    index: int
    timestamp: float
    image: np.ndarray
    file_name: str | None = None


class VideoSource:
    """A stream of `Frame`s. Iterate it once; use it as a context manager (or `close()`) to free the decoder.

    Attributes:
        name: what it reads (a path, a pattern, ``camera 0``).
        fps: frames per second (of the file, `fps=` when given, or 30 where unknown).
        frame_count: frames announced by the source (the file header, the number of images), None when unknown.
        size: (width, height) of the frames where known before reading, else None.
        frames_read: frames yielded so far.
        stop_reason: None, or why reading ended before `frame_count` (also issued as a `VideoReadWarning`).
        problems: the messages of every `VideoReadWarning` issued (stop_reason, skipped images).
    """

    name: str = "frames"
    fps: float = DEFAULT_FPS
    frame_count: int | None = None
    size: tuple[int, int] | None = None

    def __init__(self) -> None:
        self.frames_read = 0
        self.stop_reason: str | None = None
        self.problems: list[str] = []

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the decoder (a no-op for sources without one)."""

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _stopped(self, reason: str) -> None:
        self.stop_reason = reason
        self._warn(reason)

    def _warn(self, message: str) -> None:
        self.problems.append(message)
        warnings.warn(message, VideoReadWarning, stacklevel=3)


def _valid_fps(value: float) -> bool:
    return math.isfinite(value) and 0 < value <= 1000


def _check_fps(fps: float | None) -> float | None:
    if fps is None:
        return None
    if not _valid_fps(float(fps)):
        raise VitPoseError(f"fps must be a positive number (up to 1000), got {fps}")
    return float(fps)


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class VideoFileSource(VideoSource):
    """Frames of a video file, decoded by OpenCV (its FFmpeg backend).

    Timestamps are index / fps (constant frame rate). When decoding stops before the frame count of the header
    (a truncated or corrupt file), the frames decoded so far are yielded, `stop_reason` says at which frame it
    stopped, and a `VideoReadWarning` is issued. A file of which no frame decodes raises `ValueError`.

    Args:
        path: the video file.
        fps: overrides the file's frame rate (for the timestamps and the output video).

    Raises:
        FileNotFoundError: no such file. ValueError: empty, or not a video OpenCV can open.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        if self.path.is_dir():
            raise VitPoseError(f"{path}: is a folder")
        if self.path.stat().st_size == 0:
            raise VitPoseError(f"{path}: empty file (0 bytes)")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            self._capture.release()
            raise VitPoseError(
                f"{path}: OpenCV cannot open it as a video: not a video file, a codec this OpenCV build lacks, or a "
                "file cut short before its header or index (an .mp4 keeps its index at the end, so a truncated "
                ".mp4 cannot be opened at all)"
            )
        file_fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        given = _check_fps(fps)
        if given is not None:
            self.fps = given
        elif _valid_fps(file_fps):
            self.fps = file_fps
        else:
            self._warn(f"{path}: the file gives no frame rate ({file_fps}); using {DEFAULT_FPS:g} (set it with --fps)")
            self.fps = DEFAULT_FPS
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.size = (width, height) if width > 0 and height > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            ok, frame = self._capture.read()
            if not ok or frame is None:
                break
            yield Frame(index, index / self.fps, _bgr_to_rgb(frame))
            index += 1
            self.frames_read = index
        if index == 0:
            raise VitPoseError(
                f"{self.name}: no frame could be decoded (a corrupt or truncated file, or a codec this OpenCV lacks)"
            )
        if self.frame_count is not None and index < self.frame_count:
            self._stopped(
                f"{self.name}: reading stopped at frame {index} (0-based) of the {self.frame_count} frames its header "
                f"announces: the file is truncated or corrupt there; frames 0-{index - 1} were read"
            )

    def close(self) -> None:
        self._capture.release()


class CameraSource(VideoSource):
    """Frames of a camera (`cv2.VideoCapture(index)`), until it stops delivering, the consumer stops, or Ctrl-C.

    Timestamps are wall-clock seconds since the first frame. `fps` (or the camera's reported rate, else 30) is the
    rate an output video is written at.
    """

    def __init__(self, index: int, fps: float | None = None) -> None:
        super().__init__()
        self.index = int(index)
        self.name = f"camera {index}"
        self._capture = cv2.VideoCapture(self.index)
        if not self._capture.isOpened():
            self._capture.release()
            raise OSError(f"camera {index}: cannot open it (no such camera, no permission, or it is in use)")
        reported = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        given = _check_fps(fps)
        self.fps = given if given is not None else (reported if _valid_fps(reported) else DEFAULT_FPS)
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.size = (width, height) if width > 0 and height > 0 else None

    def __iter__(self) -> Iterator[Frame]:
        start: float | None = None
        index = 0
        while True:
            ok, frame = self._capture.read()
            if not ok or frame is None:
                break
            now = time.monotonic()
            start = now if start is None else start
            yield Frame(index, now - start, _bgr_to_rgb(frame))
            index += 1
            self.frames_read = index
        if index == 0:
            raise OSError(f"{self.name}: it opened but delivered no frame")
        self._stopped(f"{self.name}: stopped delivering frames after frame {index - 1}")

    def close(self) -> None:
        self._capture.release()


class ImageSequenceSource(VideoSource):
    """Image files as the frames of a video, in the given order, at `fps` (30 by default).

    An image that cannot be read is skipped with a `VideoReadWarning` naming it; its index stays unused, so the
    timestamps of the others do not move.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]], fps: float | None = None, name: str = "images") -> None:
        super().__init__()
        self.paths = [str(p) for p in paths]
        if not self.paths:
            raise VitPoseError(f"{name}: no images")
        self.name = name
        self.fps = _check_fps(fps) or DEFAULT_FPS
        self.frame_count = len(self.paths)
        self.skipped: list[str] = []

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            try:
                rgb, _ = load_image(path)
            except ImageReadError as err:
                self.skipped.append(path)
                self._warn(f"frame {index} skipped: {err}")
                continue
            if rgb.dtype != np.uint8:
                rgb = np.clip(rgb, 0, 255).astype(np.uint8)
            self.frames_read += 1
            yield Frame(index, index / self.fps, rgb, path)
        if self.frames_read == 0:
            raise VitPoseError(f"{self.name}: none of its {len(self.paths)} images could be read")


class ArraySource(VideoSource):
    """RGB uint8 (H, W, 3) arrays (any iterable, consumed lazily) as frames at `fps` (30 by default)."""

    def __init__(self, images: Iterable[np.ndarray], fps: float | None = None, name: str = "arrays") -> None:
        super().__init__()
        self._images = images
        self.name = name
        self.fps = _check_fps(fps) or DEFAULT_FPS
        if hasattr(images, "__len__"):
            self.frame_count = len(images)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Frame]:
        for index, image in enumerate(self._images):
            array = np.asarray(image)
            if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                got = f"{array.dtype} {array.shape}"
                raise VitPoseError(f"frame {index}: expected an RGB uint8 (H, W, 3) array, got {got}")
            self.frames_read += 1
            yield Frame(index, index / self.fps, array)


def open_video(source: Any, fps: float | None = None) -> VideoSource:
    """A `VideoSource` for a path, pattern, camera index or iterable of arrays.

    Args:
        source: a video file; a folder of images; a glob pattern of images (``"frames/*.png"``); one image file; a
            camera index (an int, or a string of digits that is not an existing file); a `VideoSource` (returned
            as is); or an iterable of RGB uint8 (H, W, 3) arrays.
        fps: frame rate of image sequences and arrays (default 30); for video files and cameras, overrides theirs.

    Raises:
        FileNotFoundError: a path that does not exist (and is not a pattern or camera index).
        ValueError: a folder or pattern without images, a file that is not a video.
        OSError: a camera that cannot be opened.
    """
    if isinstance(source, VideoSource):
        return source
    if isinstance(source, int) and not isinstance(source, bool):
        return CameraSource(source, fps)
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        path = Path(text)
        if path.is_dir():
            found = images_in_folder(path)
            if not found:
                raise VitPoseError(f"{text}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            return ImageSequenceSource(found, fps, name=text)
        if path.is_file():
            if is_image_file(path):
                return ImageSequenceSource([text], fps, name=text)
            return VideoFileSource(path, fps)
        if text.isdigit():
            return CameraSource(int(text), fps)
        if is_pattern(text):
            images = match_pattern(text, images_only=True)
            if not images:
                raise VitPoseError(f"{text}: the pattern matches no image")
            return ImageSequenceSource(images, fps, name=text)
        raise FileNotFoundError(f"{text}: no such file or folder (nor a glob pattern or a camera index such as 0)")
    if isinstance(source, np.ndarray) and source.ndim == 4:
        return ArraySource(list(source), fps)
    if isinstance(source, Iterable):
        return ArraySource(source, fps)
    raise TypeError(f"cannot read frames from a {type(source).__name__}: pass a path, a camera index or RGB arrays")


def check_outputs(source: Any, out: Any = None, jsonl: Any = None) -> None:
    """Refuse outputs that would replace the input (the video file, or an image of the sequence) or each other,
    before anything is opened for writing (`vitpose.errors.OutputError`). `source`: what `open_video` takes, or
    the `VideoSource` it returned."""
    outputs = [(option, path) for option, path in (("--out", out), ("--jsonl", jsonl)) if path is not None]
    if len(outputs) == 2 and InputFiles([("--out", out)]).find(jsonl) is not None:
        raise OutputError(f"--out and --jsonl name the same file: {out}; give two different files")
    inputs = InputFiles()
    if isinstance(source, VideoFileSource):
        inputs.add("the input video", source.path)
    elif isinstance(source, ImageSequenceSource):
        for path in source.paths:
            inputs.add("the input image", path)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            for image in images_in_folder(path):
                inputs.add("the input image", image)
        elif path.is_file():
            inputs.add("the input video" if not is_image_file(path) else "the input image", path)
        elif is_pattern(str(source)):
            for image in match_pattern(str(source), images_only=True):
                inputs.add("the input image", image)
    for option, path in outputs:
        inputs.check_outputs([path], option=option, hint=f"write {option} to another file")


def writer_codec(path: str | os.PathLike[str]) -> str:
    """The FourCC `VideoWriter` uses for this file name; `ValueError` for a suffix it does not write."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITER_CODECS:
        choices = ", ".join(f"{s} ({c})" for s, c in WRITER_CODECS.items())
        raise VitPoseError(f"{path}: cannot write a video with suffix {suffix or '(none)'!r}; use one of {choices}")
    return WRITER_CODECS[suffix]


class VideoWriter:
    """Writes RGB frames to a video file through `cv2.VideoWriter`, frame by frame.

    The file is opened at the first frame, at that frame's size unless `size` is given; later frames of another
    size are resized to it (with one warning). `close()` (or leaving the `with` block) finishes the file, which is
    then playable however few frames it holds.

    Args:
        path: output file; its suffix picks the codec (see `WRITER_CODECS`); its folder is created.
        fps: frame rate.
        size: (width, height), or None for the first frame's.
        fourcc: a FourCC overriding the suffix's codec.

    Raises:
        ValueError: an unsupported suffix or bad fps. OSError (at the first frame): OpenCV cannot open the file
            with this codec.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int] | None = None,
        fourcc: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.fourcc = fourcc or writer_codec(self.path)
        if len(self.fourcc) != 4:
            raise VitPoseError(f"fourcc must have 4 characters, got {self.fourcc!r}")
        self.fps = _check_fps(fps) or DEFAULT_FPS
        self.size = size
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._warned_resize = False

    def _open(self, size: tuple[int, int]) -> cv2.VideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
        if not writer.isOpened():
            writer.release()
            raise OSError(
                f"{self.path}: OpenCV cannot write a video with codec {self.fourcc!r} here (its FFmpeg build lacks "
                "the encoder, or the folder is not writable); try an .avi (MJPG) or .mp4 (mp4v) file name"
            )
        return writer

    def write(self, image: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        frame = np.asarray(image)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise VitPoseError(f"VideoWriter takes RGB uint8 (H, W, 3) frames, got {frame.dtype} {frame.shape}")
        height, width = frame.shape[:2]
        if self.size is None:
            self.size = (width, height)
        if self._writer is None:
            self._writer = self._open(self.size)
        if (width, height) != self.size:
            if not self._warned_resize:
                warnings.warn(
                    f"{self.path}: frames of size {width}x{height} resized to the video's {self.size[0]}x"
                    f"{self.size[1]}",
                    stacklevel=2,
                )
                self._warned_resize = True
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file (safe to call twice)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class JsonlWriter:
    """JSON Lines: `write(obj)` appends one compact JSON object and a newline in one write, and flushes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import json

        self._dumps = json.dumps
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        self.lines_written = 0

    def write(self, obj: Any) -> None:
        """Append one line."""
        self._file.write(self._dumps(obj, separators=(",", ":")) + "\n")
        self._file.flush()
        self.lines_written += 1

    def close(self) -> None:
        """Close the file (safe to call twice)."""
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
