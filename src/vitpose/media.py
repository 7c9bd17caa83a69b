"""Images in: reading files, arrays, tensors and PIL images as RGB pixels, and turning the inputs a user names
(files, folders, glob patterns) into image paths, in one natural order (``frame_2`` before ``frame_10``).

Every command (predict, eval, video, train) and the results' drawing read images through `load_image`, so an
image that cannot be read gives the same `ImageReadError` (naming the file and the reason) everywhere.
"""

from __future__ import annotations

import glob
import os
import re
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
    """The files a glob pattern (``**`` recursive) matches, in natural order; only images when `images_only`."""
    found = [
        p for p in glob.glob(pattern, recursive=True) if Path(p).is_file() and (not images_only or is_image_file(p))
    ]
    return sorted(found, key=natural_key)


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


def to_rgb_array(image: ImageLike, index: int = 0) -> np.ndarray:
    """One image as an (H, W, 3) array: uint8 where the input is 8-bit, float32 otherwise.

    Accepts PIL images (any mode), numpy arrays and torch tensors, channels-last (H, W, C) or channels-first
    (C, H, W), with C = 1 (grayscale), 3 (RGB) or 4 (RGBA: alpha dropped), and 2-D grayscale arrays.
    """
    where = f"image {index}"
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        if image.mode not in ("RGB", "L", "RGBA", "P", "LA", "CMYK", "YCbCr", "1"):
            raise VitPoseError(f"{where}: PIL mode {image.mode!r} is not supported; convert it to RGB or L")
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"{where} is a {type(image).__name__}; images must be PIL images, numpy arrays (H, W, 3) or "
            "torch tensors (3, H, W)"
        )
    arr = image
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise VitPoseError(f"{where} has shape {arr.shape}; expected (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4")
    if arr.shape[-1] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4):
        arr = arr.transpose(1, 2, 0)  # channels-first -> channels-last
    if arr.shape[-1] not in (1, 3, 4):
        raise VitPoseError(
            f"{where} has shape {image.shape}; expected (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise VitPoseError(f"{where} is empty (shape {image.shape})")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[-1] == 4:
        arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{where} has dtype {arr.dtype}; use uint8 (0-255) or float (0-255) pixels")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            raise VitPoseError(
                f"{where} has {arr.dtype} values in [{arr.min()}, {arr.max()}]; 8-bit pixels (0-255) are expected: "
                "convert 16-bit images to 8-bit first"
            )
        return np.ascontiguousarray(arr.astype(np.uint8))
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise VitPoseError(f"{where} contains NaN or infinite pixel values")
    return np.ascontiguousarray(arr)


def load_image(source: ImageSource) -> tuple[np.ndarray, str | None]:
    """An image as (H, W, 3) RGB uint8 (or float32 for float input) and its file name (None for arrays).

    Files are read with Pillow, with the EXIF orientation applied (as OpenCV's imread does for the original).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImageReadError(f"{path}: no such file")
        if path.is_dir():
            raise ImageReadError(f"{path}: is a folder, not an image")
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                image.load()  # decode now: a truncated file fails here, not later
                image = ImageOps.exif_transpose(image)
                return np.asarray(image.convert("RGB")), str(path)
        except UnidentifiedImageError:
            raise ImageReadError(f"{path}: not an image file Pillow can read") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageReadError(f"{path}: cannot decode the image ({err}); the file may be truncated") from None
    try:
        return to_rgb_array(source), None
    except (TypeError, ValueError) as err:
        raise ImageReadError(str(err)) from None


__all__ = [
    "IMAGE_SUFFIXES",
    "FailedImage",
    "expand_inputs",
    "find_image_files",
    "images_in_folder",
    "is_image_file",
    "load_image",
    "match_pattern",
    "natural_key",
    "to_rgb_array",
]
