"""Images in: reading files, arrays, tensors and PIL images as RGB pixels, and turning the inputs a user names
(files, folders, glob patterns) into image paths, in one natural order (``frame_2`` before ``frame_10``).

Every command (predict, eval, video, train) and the results' drawing read images through `load_image`, so an
image that cannot be read gives the same `ImageReadError` (naming the file, the problem and what to do) everywhere,
and the same pixels come out of a file and of the array it holds. The pixel rule, in one place
(`_array_pixels`), for files and arrays alike:

- 8-bit images (and Pillow's 8-bit modes: 1, L, LA, P, RGB, RGBA, CMYK, YCbCr, ...) as they are; booleans 0 / 255;
- 16-bit integers (uint16 / int16 arrays; PNG, TIFF, PGM files Pillow opens as ``I;16`` or ``I``) -> 8 bits as
  their high byte (``v >> 8``), as Pillow itself reduces 16-bit colour PNGs and OpenCV 16-bit images;
- wider integer arrays (numpy's default int64) must hold 8-bit values 0-255; negative values are refused;
- floats (arrays, ``F`` TIFFs) must be finite and lie in [0, 1] (scaled by 255: the float-image convention) or in
  [0, 255] (as they are), then are rounded to uint8; anything else is refused with the range found.

Files over the decompression-bomb limit (Pillow's ``MAX_IMAGE_PIXELS``, 89.5 megapixels; ``VITPOSE_MAX_IMAGE_PIXELS``
overrides it, 0 for none) are refused, naming their size; a malformed EXIF block warns and the image is still read.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import os
import re
import stat
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitpose.errors import AnnotationError, ImageReadError, VitPoseError

ImageLike = Any  # PIL.Image.Image | np.ndarray | torch.Tensor
ImageSource = str | os.PathLike[str] | np.ndarray | torch.Tensor | Any  # path, array, tensor or PIL image
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


class ImageReadWarning(UserWarning):
    """An image was read, but something about its file is off (a malformed EXIF block, a note from Pillow)."""


@dataclass
class FailedImage:
    """An input that yielded no result, and why (what `iter_predict(errors="report")` yields in its place)."""

    source: str
    reason: str


def natural_key(path: str) -> list[Any]:
    """Sort key: digit runs compare as numbers (``frame_2`` < ``frame_10``), the rest case-insensitively."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def is_image_file(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def images_in_folder(folder: str | os.PathLike[str]) -> list[str]:
    """The image files directly in `folder`, in natural order."""
    found = [str(p) for p in Path(folder).iterdir() if p.is_file() and is_image_file(p)]
    return sorted(found, key=natural_key)


def match_pattern(pattern: str, *, images_only: bool = False) -> list[str]:
    """The files a glob pattern (``**`` recursive) matches, in natural order; only images when `images_only`.

    ``**`` follows symbolic links to folders but enters each real folder once, so a link loop neither hangs nor
    repeats; a file reached by several paths (through links) is listed once, by its shortest path.
    """
    found = [p for p in _glob(pattern) if os.path.isfile(p) and (not images_only or is_image_file(p))]
    best: dict[str, str] = {}
    for path in sorted(found, key=lambda p: (p.count(os.sep), natural_key(p))):
        best.setdefault(os.path.realpath(path), path)
    return sorted(best.values(), key=natural_key)


def _glob(pattern: str) -> list[str]:
    """`glob.glob(pattern, recursive=True)`, with ``**`` expanded over real folders, each once (no link loops)."""
    parts = pattern.split(os.sep)
    if "**" not in parts:
        return glob.glob(pattern)
    cut = parts.index("**")
    head, rest = os.sep.join(parts[:cut]), os.sep.join(parts[cut + 1 :])
    if cut and not head:
        head = os.sep  # "/**/..."
    roots = [p for p in glob.glob(head) if os.path.isdir(p)] if is_pattern(head) else [head]
    found: list[str] = []
    seen: set[str] = set()
    for root in roots:
        for folder in _folders(root or os.curdir, seen):
            base = "" if not root and folder == os.curdir else os.path.relpath(folder) if not root else folder
            found.extend(_glob(os.path.join(glob.escape(base), rest or "*")))  # a trailing "**": every file below
    return found


def _folders(root: str, seen: set[str]) -> list[str]:
    """`root` and the non-hidden folders below it (following links), each real folder once."""
    out: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen or not os.path.isdir(folder):
            continue
        seen.add(real)
        out.append(folder)
        try:
            names = sorted(os.listdir(folder), key=natural_key, reverse=True)
        except OSError:
            continue
        below = (os.path.join(folder, name) for name in names if not name.startswith("."))
        stack.extend(path for path in below if os.path.isdir(path))
    return out


def is_pattern(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def expand_inputs(inputs: Sequence[str]) -> tuple[list[str], list[FailedImage]]:
    """Files, folders (their images) and glob patterns -> image paths in natural order, plus the inputs that named
    nothing. A folder holding no image, a pattern matching nothing and a missing path are reported, not dropped."""
    paths: list[str] = []
    missing: list[FailedImage] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = images_in_folder(path)
            if not found:
                missing.append(FailedImage(item, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})"))
            paths.extend(found)
        elif path.exists():
            paths.append(item)
        elif is_pattern(item):
            found = match_pattern(item)
            if not found:
                missing.append(FailedImage(item, "the pattern matches no file"))
            paths.extend(found)
        else:
            missing.append(FailedImage(item, "no such file or folder"))
    return paths, missing


def find_image_files(images: str | os.PathLike[str], entries: Sequence[tuple[Any, str]]) -> dict[Any, Path]:
    """key -> file for `(key, file_name)` entries, looking for `file_name` under `images` (also by its base name).

    Raises `AnnotationError` for a missing folder, or naming the images that are not there.
    """
    root = Path(images)
    if not root.is_dir():
        raise AnnotationError(f"images folder not found: {root}")
    found: dict[Any, Path] = {}
    missing: list[str] = []
    for key, name in entries:
        for candidate in (root / name, root / Path(name).name):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(name)
    if missing:
        raise AnnotationError(
            f"{len(missing)} of the {len(entries)} annotated images are not in {root}: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
            + " (is --images the folder these annotations were made for?)"
        )
    return found


def _array_pixels(image: Any, where: str, *, unit_floats: bool) -> np.ndarray:
    """An array or tensor as (H, W, 3) pixels: uint8 for integer and boolean input, float32 for float input.

    The one rule for pixel values, files and arrays alike (see the module's docstring): bool -> 0 / 255;
    uint8 / int8 as they are; uint16 / int16 (16-bit PNG and TIFF, PIL ``I;16``) -> the high byte (``v >> 8``, as
    Pillow and OpenCV reduce 16-bit colour images); wider integers (numpy's default) must hold 8-bit values (0-255);
    floats must be finite, and with `unit_floats` lie in [0, 1] (scaled by 255) or [0, 255].
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.dtype in (torch.bfloat16, torch.float16):
            image = image.float()  # numpy has no bfloat16
        image = image.numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"{where} is a {type(image).__name__}; images must be PIL images, numpy arrays (H, W, 3) or "
            "torch tensors (3, H, W)"
        )
    arr = image
    shape_hint = "expected (H, W), (H, W, C) or (C, H, W) with C in 1 (grey), 2 (grey, alpha), 3 (RGB), 4 (RGBA)"
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise VitPoseError(f"{where} has shape {image.shape}; {shape_hint}")
    if arr.shape[-1] not in (1, 2, 3, 4) and arr.shape[0] in (1, 2, 3, 4):
        arr = arr.transpose(1, 2, 0)  # channels-first -> channels-last
    if arr.shape[-1] not in (1, 2, 3, 4):
        raise VitPoseError(f"{where} has shape {image.shape}; {shape_hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise VitPoseError(f"{where} is empty (shape {image.shape})")
    if arr.shape[-1] in (1, 2):
        arr = np.repeat(arr[:, :, :1], 3, axis=2)  # grey (alpha dropped)
    elif arr.shape[-1] == 4:
        arr = arr[:, :, :3]  # alpha dropped, as Pillow's convert("RGB") does
    dtype = arr.dtype
    if dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(dtype, np.integer):
        low, high = int(arr.min()), int(arr.max())
        if low < 0:
            raise VitPoseError(
                f"{where} has {dtype} values in [{low}, {high}]: pixels cannot be negative (8-bit pixels are 0-255, "
                "16-bit pixels 0-65535 in a uint16 array)"
            )
        if dtype.itemsize == 2:
            return (arr >> 8).astype(np.uint8)
        if high > 255:
            raise VitPoseError(
                f"{where} has {dtype} values in [{low}, {high}]: a {dtype} array is read as 8-bit pixels (0-255); "
                "pass 16-bit pixels as a uint16 array (read as v >> 8), or convert the image to 8 bits"
            )
        return np.ascontiguousarray(arr.astype(np.uint8))
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(
            f"{where} has dtype {dtype}; use uint8 (0-255), uint16 (0-65535) or float (0-1 or 0-255) pixels"
        )
    if not np.all(np.isfinite(arr)):
        raise VitPoseError(f"{where} contains NaN or infinite pixel values")
    low, high = float(arr.min()), float(arr.max())
    if not unit_floats:
        if max(-low, high) > np.finfo(np.float32).max:
            raise VitPoseError(f"{where} has float values in [{low:g}, {high:g}], beyond float32")
        return np.ascontiguousarray(arr.astype(np.float32))
    if low < 0 or high > 255:
        raise VitPoseError(
            f"{where} has float values in [{low:g}, {high:g}]: float pixels are read as 0-1 (when none exceeds 1) "
            "or 0-255; scale the image into one of these ranges"
        )
    arr = arr.astype(np.float32)
    if high <= 1:
        arr = arr * np.float32(255)
    return np.ascontiguousarray(arr)


def _pil_pixels(image: Any, where: str, *, unit_floats: bool) -> np.ndarray:
    """A PIL image as (H, W, 3) pixels, by the rule of `_array_pixels`: 8-bit modes through Pillow's RGB conversion,
    high-bit-depth modes (``I;16*``, ``I``, ``F``) through numpy and the array rule (``convert("RGB")`` would clip
    them: a 16-bit image nearly white, a 0-1 float image nearly black)."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image)
    if mode.startswith("I;16"):
        return _array_pixels(np.asarray(image).astype(np.uint16), where, unit_floats=unit_floats)
    if mode == "I":
        values = np.asarray(image)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
            raise VitPoseError(
                f"{where} has 32-bit integer pixels in [{int(values.min())}, {int(values.max())}]; up to 16 bits "
                "per channel (0-65535) are read: convert it to 16 or 8 bits"
            )
        return _array_pixels(values.astype(np.uint16), where, unit_floats=unit_floats)  # 16-bit PGM / PPM: mode I
    if mode == "F":
        return _array_pixels(np.asarray(image, dtype=np.float32), where, unit_floats=unit_floats)
    try:
        return np.asarray(image.convert("RGB"))
    except ValueError:
        raise VitPoseError(f"{where}: PIL mode {mode!r} cannot be converted to RGB; convert it to RGB or L") from None


def to_rgb_array(image: ImageLike, index: int = 0) -> np.ndarray:
    """One image as an (H, W, 3) array: uint8 for integer, boolean and 8-bit PIL input, float32 for float input.

    Accepts PIL images (any mode Pillow converts to RGB, and the high-bit-depth modes ``I;16``, ``I``, ``F``),
    numpy arrays and torch tensors, channels-last (H, W, C) or channels-first (C, H, W), with C = 1 (grey),
    2 (grey and alpha), 3 (RGB) or 4 (RGBA; alpha dropped), and 2-D grey arrays; integer pixels follow the module's
    rule (16-bit -> 8 bits). Float pixels are kept as they are (transformers' contract: the processor's
    `do_rescale` divides them by 255, and warns where they look already scaled to [0, 1]); `load_image` also
    reads 0-1 floats.
    """
    where = f"image {index}"
    if _is_pil(image):
        return _pil_pixels(image, where, unit_floats=False)
    return _array_pixels(image, where, unit_floats=False)


def _is_pil(image: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(image, Image.Image)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return rgb
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def max_image_pixels() -> int | None:
    """The decompression-bomb limit: images with more pixels are refused (None: no limit).

    Pillow's `PIL.Image.MAX_IMAGE_PIXELS` (89,478,485 by default); the environment variable
    ``VITPOSE_MAX_IMAGE_PIXELS`` (a number; 0 for no limit), where set, replaces it (and sets Pillow's, which its
    own check at open uses).
    """
    from PIL import Image

    text = os.environ.get("VITPOSE_MAX_IMAGE_PIXELS", "").strip()
    if text:
        try:
            value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            value = -1
        if value < 0:
            raise VitPoseError(f"VITPOSE_MAX_IMAGE_PIXELS={text!r}: expected a number of pixels (0: no limit)")
        Image.MAX_IMAGE_PIXELS = value or None
    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) if limit else None


def image_read_error(path: str, problem: str, todo: str = "") -> ImageReadError:
    """The `ImageReadError` of a file: "PATH: PROBLEM; TODO", with the path and the reason kept apart."""
    reason = f"{problem}; {todo}" if todo else problem
    return ImageReadError(f"{path}: {reason}", path=path, reason=reason)


_RECOPY = "copy or export the file again, or leave it out"


def _os_problem(path: str, err: OSError) -> ImageReadError:
    """An `OSError` met opening `path` as the user's problem: what happened and what to do."""
    code = err.errno
    if code == errno.ENOENT:
        if os.path.islink(path):
            return image_read_error(path, f"is a broken symbolic link (to {os.readlink(path)}, which does not exist)")
        return image_read_error(path, "no such file")
    if code == errno.ELOOP:
        return image_read_error(
            path, "is a symbolic link loop (its links lead back to themselves)", "fix or remove the link"
        )
    if code in (errno.EACCES, errno.EPERM):
        return image_read_error(
            path, "permission denied", "make the file readable (chmod +r) or run as a user who can read it"
        )
    if code == errno.ENOTDIR:
        return image_read_error(path, "no such file (a part of the path is a file, not a folder)")
    if code == errno.ENAMETOOLONG:
        return image_read_error(path, "the file name is too long for the file system")
    if code == errno.EISDIR:
        return image_read_error(path, "is a folder, not an image")
    return image_read_error(path, f"cannot be read ({err.strerror or err})", "check the disk or network share it is on")


def _oriented(image: Any, path: str) -> Any:
    """`image` turned upright by its EXIF orientation (as OpenCV's imread does for the original).

    A malformed EXIF block does not lose the image: Pillow's `exif_transpose` also rewrites the EXIF, which fails
    on some malformed blocks; the orientation is then read and applied here, and where the EXIF cannot be read at
    all the image is read as stored. Either way an `ImageReadWarning` names the file.
    """
    from PIL import Image, ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception as err:  # any failure in Pillow's EXIF code concerns this file's metadata only
        problem = f"{type(err).__name__}: {err}"
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # the block cannot be parsed at all
        orientation = None
    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation if isinstance(orientation, int) else None)
    done = f"its orientation ({orientation}) was applied" if method is not None else "it is read as stored, unrotated"
    warnings.warn(f"{path}: malformed EXIF block ({problem}); {done}", ImageReadWarning, stacklevel=5)
    return image if method is None else image.transpose(method)


def _read_file(source: str | os.PathLike[str]) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; every failure is an `ImageReadError` naming the file."""
    path = str(source)
    try:
        info = os.stat(path)
    except OSError as err:
        raise _os_problem(path, err) from None
    except ValueError:  # a NUL byte in the name
        raise image_read_error(path, "not a valid file name") from None
    if stat.S_ISDIR(info.st_mode):
        raise image_read_error(path, "is a folder, not an image", "name the image files in it")
    if not stat.S_ISREG(info.st_mode):
        raise image_read_error(path, "is not a regular file (a device, pipe or socket)", "copy the image to a file")
    if info.st_size == 0:
        raise image_read_error(path, "empty file (0 bytes)", _RECOPY)
    return _decode(path, path)


def decode_image(data: bytes, name: str = "upload") -> np.ndarray:
    """An image file's bytes (an upload) as (H, W, 3) uint8 RGB, by the same rule and checks as `load_image` for
    files (EXIF orientation, pixel rule, decompression-bomb limit); every failure an `ImageReadError` for `name`."""
    if not data:
        raise image_read_error(name, "empty file (0 bytes)", _RECOPY)
    return _decode(io.BytesIO(data), name)


def _decode(source: Any, path: str) -> np.ndarray:
    """`source` (a path or a binary file object) decoded; errors name `path`."""
    from PIL import Image, UnidentifiedImageError

    limit = max_image_pixels()
    caught: list[warnings.WarningMessage] = []
    # Pillow's notes about the file are caught and said again naming it, where that is safe: catching warnings
    # changes the process's warning state, which threads share; on the job's worker threads (decoding side by
    # side) they pass through as Pillow gives them.
    main = threading.current_thread() is threading.main_thread()
    capture = warnings.catch_warnings(record=True) if main else contextlib.nullcontext([])
    try:
        with capture as caught:
            if main:
                warnings.simplefilter("always")
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is checked below
            with Image.open(source) as image:  # reads the header only
                width, height = image.size
                if limit is not None and width * height > limit:
                    raise _bomb(path, f"{width} x {height} = {width * height:,}", limit)
                if width == 0 or height == 0:
                    raise image_read_error(path, f"declares an empty image ({width} x {height})", _RECOPY)
                image.load()  # decode now: a truncated file fails here, not later
                rgb = _to_uint8(_pil_pixels(_oriented(image, path), path, unit_floats=True))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:
        found = re.search(r"\((\d+) pixels\)", str(err))
        raise _bomb(path, f"{int(found.group(1)):,}" if found else "more than twice that", limit) from None
    except UnidentifiedImageError:
        raise image_read_error(
            path, "not an image file Pillow can read (unknown format, or a damaged header)", _RECOPY
        ) from None
    except VitPoseError as err:  # pixels the rule refuses (32-bit integers, a mode without RGB conversion)
        message = str(err)
        raise image_read_error(path, message[len(path) + 2 :] if message.startswith(f"{path}: ") else message) from None
    except MemoryError:
        raise image_read_error(path, "not enough memory to decode it") from None
    except OSError as err:
        if err.errno is not None:
            raise _os_problem(path, err) from None
        raise image_read_error(
            path, f"cannot decode the image ({err}): the file is truncated or corrupt", _RECOPY
        ) from None
    except Exception as err:  # anything else Pillow's decoders raise on a damaged file
        problem = f"cannot decode the image ({type(err).__name__}: {err}): the file is corrupt"
        raise image_read_error(path, problem, _RECOPY) from None
    finally:
        for seen in {str(w.message): w for w in caught}.values():  # Pillow's notes about the file, naming it
            if not issubclass(seen.category, Image.DecompressionBombWarning):
                warnings.warn(f"{path}: {seen.message}", ImageReadWarning, stacklevel=4)
    return rgb


def _bomb(path: str, size: str, limit: int | None) -> ImageReadError:
    error = image_read_error(
        path,
        f"{size} pixels, over the decompression-bomb limit of {limit:,} pixels (a file this large may be made to "
        "exhaust memory)",
        "if you trust it, raise the limit: VITPOSE_MAX_IMAGE_PIXELS=N in the environment (0: no limit), or "
        "PIL.Image.MAX_IMAGE_PIXELS in Python",
    )
    error.too_large = True
    return error


def encode_image(rgb: np.ndarray, suffix: str) -> bytes:
    """(H, W, 3) uint8 RGB encoded as the format of the file suffix `suffix` (".jpg", ".png", ...), by OpenCV."""
    import cv2

    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise OSError(f"cannot encode an image as {suffix}")
    return encoded.tobytes()


def load_image(source: ImageSource) -> tuple[np.ndarray, str | None]:
    """An image as (H, W, 3) RGB uint8 and its file name (None for arrays, tensors and PIL images).

    Files are read with Pillow, with the EXIF orientation applied (as OpenCV's imread does for the original);
    files and arrays follow the same pixel rule (the module's docstring: 16-bit -> 8 bits, 0-1 floats x 255).

    Raises:
        ImageReadError: for anything that cannot be read, naming the file (or the array's problem), what is wrong
            and what to do; never another exception for a bad input.
    """
    if isinstance(source, (str, os.PathLike)):
        return _read_file(source), str(source)
    try:
        if _is_pil(source):
            rgb = _pil_pixels(source, "image", unit_floats=True)
        else:
            rgb = _array_pixels(source, "image", unit_floats=True)
    except (TypeError, ValueError) as err:
        raise ImageReadError(str(err)) from None
    except MemoryError:
        raise ImageReadError("image: not enough memory to convert it") from None
    return _to_uint8(rgb), None


__all__ = [
    "IMAGE_SUFFIXES",
    "FailedImage",
    "ImageReadWarning",
    "decode_image",
    "encode_image",
    "expand_inputs",
    "find_image_files",
    "image_read_error",
    "images_in_folder",
    "is_image_file",
    "load_image",
    "match_pattern",
    "max_image_pixels",
    "natural_key",
    "to_rgb_array",
]
