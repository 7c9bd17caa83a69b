"""`VitPoseImageProcessor`: the transformers-compatible processor, built from `transforms` (crops) and `codec`
(decoding).

Pre-processing is the original's: box -> centre/scale (padding 1.25), UDP warp matrix, `cv2.warpAffine` bilinear on
the 8-bit image, then /255 and ImageNet normalisation. Post-processing is the original's: argmax, DARK-UDP with the
original blur (kernel 11, sigma 2), UDP transform back to the image.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vitpose.config import BACKBONE_BOUNDS, Bound, checked
from vitpose.errors import ConfigError, VitPoseError
from vitpose.hub import hub_options, resolve_file
from vitpose.media import ImageLike, to_rgb_array
from vitpose.ops.codec import UDPHeatmapCodec
from vitpose.ops.geometry import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    box_to_center_scale,
    crop_and_normalize,
    crop_boxes_torch,
    sampled_region,
)
from vitpose.parallel import crop_pool
from vitpose.pil_pixels import pil_pixels

PROCESSOR_NAME = "preprocessor_config.json"


class BatchFeature(dict):
    """The processor's output: a dict (`pixel_values`) that moves to a device with `.to()`, as transformers'."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, *args: Any, **kwargs: Any) -> BatchFeature:
        """`.to(device)`, `.to(dtype)` or both; dtypes apply to floating tensors only."""
        out = BatchFeature()
        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                if value.is_floating_point():
                    value = value.to(*args, **kwargs)
                else:
                    device = kwargs.get("device") or next((a for a in args if isinstance(a, (str, torch.device))), None)
                    value = value.to(device) if device is not None else value
            out[key] = value
        return out


MIN_CROPS_PER_THREAD = 2


def _crop_workers(crops: int) -> int:
    """Threads for cutting `crops` crops: torch's intra-op thread budget (so `torch.set_num_threads(1)` keeps the
    processor on one core too), at most 2 (more brings nothing at ~0.3 ms per crop), and only with enough crops."""
    return max(1, min(2, torch.get_num_threads(), crops // MIN_CROPS_PER_THREAD))


def _is_pil(image: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(image, Image.Image)


def _region_array(image: Any, index: int, centers: Any, scales: Any) -> np.ndarray:
    """A PIL image as an (H, W, 3) array in which only the part the crops read is converted.

    Converting a PIL image to numpy copies it (twice for non-RGB modes); for small boxes in a large photo most of
    that is wasted. The array is allocated whole (`np.zeros` maps untouched pages lazily: no cost) so that the warp
    matrices, hence the crops, are exactly those of the whole image; only the sampled region (with a margin) is
    filled in.
    """
    width, height = image.size
    region = sampled_region(centers, scales, (width, height))
    if region is not None and (region[2] - region[0]) * (region[3] - region[1]) > 0.5 * width * height:
        return to_rgb_array(image, index)
    if image.mode not in ("RGB", "L", "RGBA", "P", "LA", "CMYK", "YCbCr", "1"):
        return to_rgb_array(image, index)  # high-bit-depth modes (I;16, I, F): converted whole, by media's rule
    out = np.zeros((height, width, 3), dtype=np.uint8)
    if region is not None:
        x0, y0, x1, y1 = region
        out[y0:y1, x0:x1] = to_rgb_array(image.crop(region), index)
    return out


def _pil_image_pixels(image: Any, index: int, centers: Any, scales: Any) -> np.ndarray:
    """A PIL image's pixels for cropping: its own buffer where Pillow exports it ((H, W, 4) RGBX / RGBA or
    (H, W, 1) grey, no copy: `vitpose.pil_pixels`), else the converted region the crops read."""
    pixels = pil_pixels(image)
    return pixels if pixels is not None else _region_array(image, index, centers, scales)


def _is_box(value: Any) -> bool:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1 and arr.shape[0] == 4


def normalize_boxes(boxes: Any, num_images: int | None) -> list[np.ndarray]:
    """Per-image box arrays (n_i, 4) float64 from the forms users pass: a list (one entry per image) of lists or
    arrays of COCO [x, y, w, h] boxes, or a (num_images, n, 4) array. For a single image a flat (n, 4) list is
    accepted too. `num_images` None takes the count from `boxes`."""
    if boxes is None:
        raise VitPoseError(
            "boxes are required: one list of person boxes (COCO [x, y, width, height]) per image, e.g. from a "
            "detector such as RT-DETR; pass [[0, 0, width, height]] to use a whole image that is already a crop"
        )
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    if isinstance(boxes, np.ndarray):
        if boxes.ndim == 2 and num_images in (None, 1):
            boxes = [boxes]
        elif boxes.ndim == 3 or (boxes.ndim == 1 and boxes.dtype == object):
            boxes = list(boxes)
        else:
            raise VitPoseError(f"boxes array has shape {boxes.shape}; expected (num_images, num_boxes, 4)")
    boxes = list(boxes)
    if num_images == 1 and boxes and _is_box(boxes[0]):
        boxes = [boxes]  # a flat list of boxes for the one image
    if num_images is not None and len(boxes) != num_images:
        raise VitPoseError(
            f"got boxes for {len(boxes)} images but {num_images} images; pass one list of boxes per image "
            "(an empty list for an image with no person)"
        )
    out = []
    for i, image_boxes in enumerate(boxes):
        if isinstance(image_boxes, torch.Tensor):
            image_boxes = image_boxes.detach().cpu().numpy()
        try:
            arr = np.asarray(image_boxes, dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as err:
            raise VitPoseError(f"boxes of image {i} are not numeric [x, y, width, height] lists: {err}") from None
        if arr.size == 0:
            arr = arr.reshape(0, 4)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise VitPoseError(
                f"boxes of image {i} have shape {arr.shape}; expected (num_boxes, 4) COCO [x, y, width, height]"
            )
        out.append(arr)
    return out


def _centers_scales(boxes: np.ndarray, image: int, input_size: tuple[int, int], padding: float):
    try:
        return box_to_center_scale(boxes, input_size=input_size, padding=padding)
    except ValueError as err:
        raise VitPoseError(f"image {image}: {err}") from None


class VitPoseImageProcessor:
    """Crops person boxes for the network and decodes heatmaps into keypoints (transformers' API).

    Args:
        size: network input {"height": 256, "width": 192}.
        do_affine_transform: crop each box (True) or take the images as crops already of `size` (False).
        do_rescale / rescale_factor, do_normalize / image_mean / image_std: pixel scaling as transformers.
        normalize_factor: kept for compatibility with transformers' config (scale unit, 200 px); unused.
        padding_factor: context added around each box (1.25 in ViTPose).
        kernel_size: default DARK blur kernel of `post_process_pose_estimation` (11, the original).
    """

    model_input_names: ClassVar[list[str]] = ["pixel_values"]

    def __init__(
        self,
        do_affine_transform: bool = True,
        size: dict[str, int] | None = None,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_normalize: bool = True,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        normalize_factor: float = 200.0,
        padding_factor: float = 1.25,
        kernel_size: int = 11,
        **kwargs: Any,
    ) -> None:
        size = {"height": 256, "width": 192} if size is None else size
        if not isinstance(size, dict) or set(size) != {"height", "width"}:
            raise ConfigError(f"size must be {{'height': H, 'width': W}}, got {size!r:.80}")
        # The model's bounds on its input (vitpose.config.BACKBONE_BOUNDS): a hostile size is refused before crops
        # of it are allocated.
        side = BACKBONE_BOUNDS["image_size"]
        bound = Bound("int", side.low, side.high)
        self.size = {key: checked(f"size.{key}", size[key], bound) for key in ("height", "width")}
        try:
            self.do_affine_transform = bool(do_affine_transform)
            self.do_rescale = bool(do_rescale)
            self.rescale_factor = float(rescale_factor)
            self.do_normalize = bool(do_normalize)
            self.image_mean = list(image_mean if image_mean is not None else IMAGENET_MEAN)
            self.image_std = list(image_std if image_std is not None else IMAGENET_STD)
            mean, std = [float(v) for v in self.image_mean], [float(v) for v in self.image_std]
            self.normalize_factor = float(normalize_factor)
            self.padding_factor = float(padding_factor)
            self.kernel_size = int(kernel_size)
        except (TypeError, ValueError, OverflowError) as err:
            raise ConfigError(f"invalid image processor setting: {err}") from None
        if len(mean) != 3 or len(std) != 3 or not all(map(math.isfinite, mean + std)) or 0 in std:
            raise ConfigError(
                f"image_mean and image_std must be 3 finite numbers each (std not 0), got {mean} and {std}"
            )
        for key in ("image_processor_type", "processor_class", "resample", "do_resize", "do_convert_rgb"):
            kwargs.pop(key, None)
        self.extra = kwargs
        self._codecs: dict[tuple[Any, ...], UDPHeatmapCodec] = {}  # decoders by (input, heatmap size, kernel)

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the network input."""
        return self.size["width"], self.size["height"]

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], **kwargs: Any) -> VitPoseImageProcessor:
        """Read `preprocessor_config.json` of a directory or hub id; the defaults (the original's) where there is
        none (an original `.pth` file, or a directory with weights only). Keyword arguments override the file."""
        hub = hub_options(kwargs, pop=True)
        settings: dict[str, Any] = {}
        if not Path(source).is_file():
            path = resolve_file(source, PROCESSOR_NAME, required=False, **hub)
            if path is not None:
                try:
                    settings = json.loads(Path(path).read_text())
                except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                    raise VitPoseError(f"cannot read {path}: {err}") from err
                except RecursionError:
                    raise ConfigError(f"{path}: its JSON is nested too deeply to be read") from None
                if not isinstance(settings, dict):
                    raise ConfigError(f"{path} is not a JSON object: not a preprocessor config")
        settings.update(kwargs)
        return cls(**settings)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        out.update(
            image_processor_type="VitPoseImageProcessor",
            do_affine_transform=self.do_affine_transform,
            size=dict(self.size),
            do_rescale=self.do_rescale,
            rescale_factor=self.rescale_factor,
            do_normalize=self.do_normalize,
            image_mean=self.image_mean,
            image_std=self.image_std,
            normalize_factor=self.normalize_factor,
        )
        if self.padding_factor != 1.25:
            out["padding_factor"] = self.padding_factor
        return out

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> None:
        os.makedirs(save_directory, exist_ok=True)
        Path(save_directory, PROCESSOR_NAME).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    def __repr__(self) -> str:
        return f"VitPoseImageProcessor({json.dumps(self.to_dict(), sort_keys=True)})"

    # ------------------------------------------------------------------ pre-processing
    def __call__(self, images: ImageLike | Sequence[ImageLike], boxes: Any = None, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, boxes=boxes, **kwargs)

    def preprocess(
        self,
        images: ImageLike | Sequence[ImageLike],
        boxes: Any = None,
        return_tensors: str | None = "pt",
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        crop_backend: str = "auto",
    ) -> BatchFeature:
        """Crop every box of every image into one batch.

        Args:
            images: one image or a list (PIL, numpy or torch; RGB, grayscale or RGBA; 8-bit or float 0-255).
            boxes: per image, a list of COCO [x, y, width, height] boxes (any number, zero included).
            return_tensors: "pt" (torch), "np" (numpy) or None (a list of (3, H, W) arrays).
            device: where `pixel_values` go. On an accelerator the crops are made there (see `crop_backend`).
            dtype: floating dtype of `pixel_values` (default float32), e.g. torch.float16 for a half model.
            crop_backend: "cv2" (`cv2.warpAffine` on the CPU, the original's), "torch" (`grid_sample` on
                `device`, at cv2's sampling positions: within one grey level of cv2) or "auto" (torch on an
                accelerator, cv2 on the CPU).

        Returns:
            BatchFeature with `pixel_values` (N, 3, H, W), N = all boxes of all images, in order.
        """
        image_list = self._image_list(images)
        if self.do_affine_transform:
            per_image = normalize_boxes(boxes, len(image_list))
            regions = [self._centers_scales(b, i) for i, b in enumerate(per_image)]
            centers, scales = [r[0] for r in regions], [r[1] for r in regions]
            pixel_values = self.crop_regions(image_list, centers, scales, device=device, crop_backend=crop_backend)
        else:
            crops = [to_rgb_array(img, i)[None] for i, img in enumerate(image_list)]
            for i, crop in enumerate(crops):
                if crop.shape[1:3] != (self.size["height"], self.size["width"]):
                    raise VitPoseError(
                        f"image {i} is {crop.shape[2]}x{crop.shape[1]} but do_affine_transform=False needs crops "
                        f"of {self.size['width']}x{self.size['height']}"
                    )
            pixel_values = self._normalize(crops)
        if device is not None:
            pixel_values = pixel_values.to(device)
        if dtype is not None:
            if not dtype.is_floating_point:
                raise VitPoseError(f"dtype must be a floating-point torch dtype, got {dtype}")
            pixel_values = pixel_values.to(dtype)
        if return_tensors in ("pt", "torch"):
            return BatchFeature(pixel_values=pixel_values)
        if return_tensors in ("np", "numpy"):
            return BatchFeature(pixel_values=pixel_values.cpu().numpy())
        if return_tensors is None:
            return BatchFeature(pixel_values=list(pixel_values.cpu().numpy()))
        raise VitPoseError(f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")

    def crop_regions(
        self,
        images: Sequence[ImageLike],
        centers: Sequence[Any],
        scales: Sequence[Any],
        device: str | torch.device | None = None,
        crop_backend: str = "auto",
    ) -> torch.Tensor:
        """Normalised crops of given regions, all images in one batch: the processor's work after the boxes.

        Args:
            images: the images (any form `preprocess` takes).
            centers, scales: per image, ``(n_i, 2)`` region centres and extents in pixels
                (`vitpose.ops.geometry.box_to_center_scale`).
            device: where the crops are made and returned (the CPU by default).
            crop_backend: "auto", "cv2" or "torch", as in `preprocess`.

        Returns:
            `pixel_values` (sum n_i, 3, H, W) float32, in order.
        """
        if crop_backend not in ("auto", "cv2", "torch"):
            raise VitPoseError(f"crop_backend must be 'auto', 'cv2' or 'torch', got {crop_backend!r}")
        if not (len(images) == len(centers) == len(scales)):
            raise VitPoseError(f"got {len(images)} images, {len(centers)} center arrays and {len(scales)} scale arrays")
        target = torch.device(device) if device is not None else torch.device("cpu")
        use_torch = crop_backend == "torch" or (crop_backend == "auto" and target.type != "cpu")
        h, w = self.size["height"], self.size["width"]
        a, b = self._scale_offset()
        counts = [np.asarray(c).reshape(-1, 2).shape[0] for c in centers]
        if use_torch:
            parts = [torch.zeros((0, 3, h, w), device=target)]
            scale_t = torch.from_numpy(a).to(target).view(1, 3, 1, 1)
            offset_t = torch.from_numpy(b).to(target).view(1, 3, 1, 1)
            for i, (img, c, s, n) in enumerate(zip(images, centers, scales, counts, strict=True)):
                if n == 0:
                    continue
                image = self._image_on(img, i, target)
                crops = crop_boxes_torch(image, c, s, output_size=self.input_size)
                parts.append(crops.mul_(scale_t).add_(offset_t))
            return torch.cat(parts)
        total = sum(counts)
        out = torch.empty((total, 3, h, w), dtype=torch.float32)
        view = out.numpy()
        # Work items: (image, centres, scales, output rows). With several crops and several threads allowed, each
        # image's boxes are split in halves run on two threads (cv2 and numpy release the GIL); one crop alone is
        # too little work to share.
        workers = _crop_workers(total)
        jobs = []
        start = 0
        for i, (img, c, s, n) in enumerate(zip(images, centers, scales, counts, strict=True)):
            rgb = _pil_image_pixels(img, i, c, s) if n and _is_pil(img) else to_rgb_array(img, i)
            if n:
                self._warn_if_prescaled(rgb)
                c, s = np.asarray(c).reshape(-1, 2), np.asarray(s).reshape(-1, 2)
                cut = (n + 1) // 2 if workers > 1 and n > 1 else n
                jobs.append((rgb, c[:cut], s[:cut], view[start : start + cut]))
                if cut < n:
                    jobs.append((rgb, c[cut:], s[cut:], view[start + cut : start + n]))
            start += n
        run = lambda job: crop_and_normalize(job[0], job[1], job[2], self.input_size, a, b, out=job[3])  # noqa: E731
        if workers > 1 and len(jobs) > 1:
            # The calling thread takes the first job itself (its caches are warm, and one thread fewer to wake).
            futures = [crop_pool(workers - 1).submit(run, job) for job in jobs[1:]]
            run(jobs[0])
            for future in futures:
                future.result()
        else:
            for job in jobs:
                run(job)
        return out

    def _scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """(x * rescale - mean) / std as x * a + b: per-channel ``a``, ``b`` (3,) float32."""
        factor = self.rescale_factor if self.do_rescale else 1.0
        mean = np.asarray(self.image_mean if self.do_normalize else [0.0] * 3, dtype=np.float64)
        std = np.asarray(self.image_std if self.do_normalize else [1.0] * 3, dtype=np.float64)
        return (factor / std).astype(np.float32), (-mean / std).astype(np.float32)

    def _image_on(self, image: ImageLike, index: int, device: torch.device) -> torch.Tensor:
        """One image as an (H, W, 3) tensor on `device`; a 3-channel tensor already there is not copied back."""
        if isinstance(image, torch.Tensor) and image.device == device and image.ndim == 3:
            if image.shape[-1] == 3:
                return image
            if image.shape[0] == 3:
                return image.permute(1, 2, 0)
        rgb = to_rgb_array(image, index)
        self._warn_if_prescaled(rgb)
        # A read-only array (from PIL) is copied rather than handed to torch.from_numpy, which warns about it:
        # silencing that warning would change the process's warning filters, which other threads (the job's
        # stages) share.
        return torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy()).to(device)

    def _warn_if_prescaled(self, rgb: np.ndarray) -> None:
        if rgb.dtype != np.uint8 and rgb.size and self.do_rescale and float(rgb.max()) <= 1.0:
            warnings.warn(
                "the images look already scaled to [0, 1] but do_rescale=True divides them by 255 again; pass "
                "0-255 pixels or set do_rescale=False",
                stacklevel=5,
            )

    def _image_list(self, images: Any) -> list[ImageLike]:
        if isinstance(images, (list, tuple)):
            if not images:
                return []
            return list(images)
        if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 4:
            return list(images)  # a batch of same-size images
        return [images]

    def _centers_scales(self, boxes: np.ndarray, image: int) -> tuple[np.ndarray, np.ndarray]:
        return _centers_scales(boxes, image, self.input_size, self.padding_factor)

    def _normalize(self, crops: list[np.ndarray]) -> torch.Tensor:
        """Crops already cut, each (n_i, H, W, 3), -> normalised `pixel_values` (sum n_i, 3, H, W) float32."""
        h, w = self.size["height"], self.size["width"]
        total = sum(len(c) for c in crops)
        out = torch.empty((total, 3, h, w), dtype=torch.float32)
        view = out.numpy()
        a, b = self._scale_offset()
        start = 0
        for crop in crops:
            if crop.shape[1:] != (h, w, 3):
                raise VitPoseError(f"crops must have shape (n, {h}, {w}, 3), got {crop.shape}")
            self._warn_if_prescaled(crop)
            for i in range(crop.shape[0]):
                for ch in range(3):
                    np.multiply(crop[i, :, :, ch], a[ch], out=view[start + i, ch])
                    view[start + i, ch] += b[ch]
            start += crop.shape[0]
        return out

    # ------------------------------------------------------------------ post-processing
    def post_process_pose_estimation(
        self,
        outputs: Any,
        boxes: Any,
        kernel_size: int | None = None,
        threshold: float | None = None,
        target_sizes: Any = None,
    ) -> list[list[dict[str, torch.Tensor]]]:
        """Heatmaps -> keypoints in image coordinates, as the original ViTPose decodes them.

        Args:
            outputs: the model output (with `.heatmaps` (N, K, h, w)), or the heatmaps tensor itself.
            boxes: the same per-image boxes given to the processor.
            kernel_size: DARK blur kernel (default 11, sigma 2 by OpenCV's rule, as the original).
            threshold: drop keypoints whose score is not above it.
            target_sizes: per image (height, width), when the boxes are relative (0-1) coordinates.

        Returns:
            Per image, a list of per-person dicts: `keypoints` (K, 2) float32 (x, y), `scores` (K,), `labels` (K,)
            keypoint indices, `bbox` (4,) the input box (COCO x, y, w, h) (transformers returns a wrong one).
        """
        heatmaps = outputs if isinstance(outputs, torch.Tensor) else _get(outputs, "heatmaps")
        num_keypoints = None if isinstance(outputs, torch.Tensor) else _get(outputs, "num_keypoints", None)
        if heatmaps is None or heatmaps.ndim != 4:
            raise VitPoseError("outputs must hold heatmaps of shape (num_boxes, num_keypoints, height, width)")
        per_image = normalize_boxes(boxes, None)
        if target_sizes is not None:
            if len(target_sizes) != len(per_image):
                raise VitPoseError(f"got {len(target_sizes)} target_sizes for {len(per_image)} images")
            per_image = [
                b * np.array([w, h, w, h], dtype=np.float64)
                for b, (h, w) in zip(per_image, [tuple(map(float, s)) for s in target_sizes], strict=True)
            ]
        total = sum(len(b) for b in per_image)
        if total != heatmaps.shape[0]:
            raise VitPoseError(
                f"{heatmaps.shape[0]} heatmaps but {total} boxes; pass the same boxes that were given to the processor"
            )
        flat = np.concatenate(per_image) if total else np.zeros((0, 4))
        if total:
            centers, scales = self._centers_scales(flat, 0)
            codec = self._codec((int(heatmaps.shape[3]), int(heatmaps.shape[2])), kernel_size)
            keypoints, scores = codec.decode(heatmaps, centers, scales)
        counts = num_keypoints.tolist() if num_keypoints is not None else [heatmaps.shape[1]] * heatmaps.shape[0]
        results: list[list[dict[str, torch.Tensor]]] = []
        boxes32 = flat.astype(np.float32)
        n = 0
        for image_boxes in per_image:
            image_results = []
            for _ in range(len(image_boxes)):
                k = int(counts[n])
                kpts, score, labels = keypoints[n, :k], scores[n, :k], np.arange(k)
                if threshold is not None:
                    keep = score > threshold
                    kpts, score, labels = kpts[keep], score[keep], labels[keep]
                # Each result owns its arrays (copies), so changing one in place cannot change another.
                image_results.append(
                    {
                        "keypoints": torch.from_numpy(np.array(kpts)),
                        "scores": torch.from_numpy(np.array(score)),
                        "labels": torch.from_numpy(labels),
                        "bbox": torch.from_numpy(boxes32[n].copy()),
                    }
                )
                n += 1
            results.append(image_results)
        return results

    def _codec(self, heatmap_size: tuple[int, int], kernel_size: int | None) -> UDPHeatmapCodec:
        """The decoder for heatmaps of ``(width, height)``, built once per size and kernel."""
        kernel = self.kernel_size if kernel_size is None else int(kernel_size)
        key = (self.input_size, heatmap_size, kernel)
        if key not in self._codecs:
            self._codecs[key] = UDPHeatmapCodec(
                input_size=self.input_size, heatmap_size=heatmap_size, blur_kernel=kernel
            )
        return self._codecs[key]


def _get(outputs: Any, name: str, default: Any = ...) -> Any:
    if isinstance(outputs, dict):
        value = outputs.get(name, None)
    else:
        value = getattr(outputs, name, None)
    if value is None and default is ...:
        raise VitPoseError(f"outputs has no {name!r}; pass the model's output")
    return value
