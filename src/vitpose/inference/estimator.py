"""The top-down estimator: images -> person boxes -> crops -> heatmaps -> keypoints, batched across images.

estimator = PoseEstimator.from_pretrained("usyd-community/vitpose-base-simple")
results = estimator(["a.jpg", "b.jpg"])          # one PoseResult per image
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import os
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vitpose.datasets import DatasetInfo, get_dataset_info, parse_dataset
from vitpose.datasets.custom import dataset_info_from_dict
from vitpose.deprecation import renamed_attribute, renamed_kwargs
from vitpose.detectors.base import check_detector
from vitpose.detectors.boxes import usable_boxes
from vitpose.detectors.build import check_detector_name
from vitpose.device import resolve_device
from vitpose.errors import DetectorError, ImageReadError, VitPoseError
from vitpose.hub import hub_options
from vitpose.inference.backends.base import check_pose_model
from vitpose.inference.results import PoseResult, instance_scores
from vitpose.media import FailedImage, ImageSource, load_image
from vitpose.models.pose import VitPoseForPoseEstimation
from vitpose.ops.codec import UDPHeatmapCodec
from vitpose.ops.geometry import box_to_center_scale
from vitpose.ops.oks import pose_nms
from vitpose.parallel import background, io_pool, ordered_map
from vitpose.processor import VitPoseImageProcessor, normalize_boxes


def dataset_info_for(model: VitPoseForPoseEstimation, dataset_index: int) -> DatasetInfo:
    """Keypoint metadata of the head that serves `dataset_index`.

    The main head's custom data set where the config describes one (`config.dataset_info`, written by training:
    names, skeleton, flip pairs and OKS sigmas); else the registry's entry where the head's keypoint count matches
    it; otherwise (a custom skeleton) one built from the model config: its keypoint names, edges and flip pairs,
    and a uniform OKS sigma of 0.05 for OKS-NMS.
    """
    head_k = model.config.num_keypoints_for(dataset_index)
    own_head = dataset_index >= 1 and dataset_index <= len(model.config.associate_num_labels)
    described = getattr(model.config, "dataset_info", None)
    if described and not own_head:
        custom = dataset_info_from_dict(described, "the model's config.json (dataset_info)")
        if custom.num_keypoints == head_k:
            return dataclasses.replace(custom, dataset_index=dataset_index)
    try:
        info = get_dataset_info(dataset_index if own_head else 0)
    except ValueError:
        info = None
    if info is not None and info.num_keypoints == head_k:
        return info
    cfg = model.config
    names = [cfg.id2label.get(i, f"keypoint_{i}") for i in range(head_k)] if not own_head else None
    names = names or [f"keypoint_{i}" for i in range(head_k)]
    edges = [tuple(e) for e in (cfg.edges or [])] if not own_head else []
    pairs = [tuple(p) for p in (cfg.flip_pairs or [])] if not own_head else []
    grey = (200, 200, 200)
    return DatasetInfo(
        name="custom",
        dataset_index=dataset_index,
        keypoint_names=tuple(names),
        skeleton=tuple(edges),
        flip_pairs=tuple(pairs),
        sigmas=(0.05,) * head_k,
        joint_weights=(1.0,) * head_k,
        upper_body_ids=(),
        lower_body_ids=(),
        keypoint_colors=(grey,) * head_k,
        link_colors=(grey,) * len(edges),
        display_name="custom",
    )


class PoseEstimator:
    """Top-down pose estimation over any number of images, with a person detector built in.

    Args:
        model: a loaded `VitPoseForPoseEstimation`.
        processor: crops the boxes (default: the original's pre-processing at the model's input size).
        detector: a `PersonDetector` (see `vitpose.detectors`), a name ("auto", "rtdetr", "hog", "full-image"),
            or None for "auto", built on first use (so that calls with boxes never load one).
        flip_test: average with the mirrored crop (the original's test-time augmentation).
        dataset: ViTPose++: the data set (name or index) whose expert and head to use (default COCO). A
            single-data-set ViTPose: the layout of its keypoints (names, skeleton, flip pairs, OKS sigmas), e.g.
            "mpii" for a model trained on MPII, or a custom data set (a `DatasetInfo` or the path of its JSON
            description); it must have the model's keypoint count. Read by `vitpose.datasets.parse_dataset`.
        batch_size: crops per network batch; the crops of several images share batches.
        nms_thr: OKS-NMS threshold applied to detector boxes (0.9 as the original evaluation); None turns it off.
        rescore_thr: keypoint-score threshold of the instance rescoring (0.2 as the original).
        det_thr: score threshold of the detector built by name (RT-DETR, HOG); given boxes are not thresholded.
            Formerly `detector_threshold` (still accepted, with a DeprecationWarning, until 0.3).
    """

    detector_threshold = renamed_attribute("det_thr")  # the old name (0.1), kept for one release

    @renamed_kwargs(detector_threshold="det_thr")
    def __init__(
        self,
        model: VitPoseForPoseEstimation,
        processor: VitPoseImageProcessor | None = None,
        detector: Any = None,
        *,
        flip_test: bool = False,
        dataset: str | int | None = None,
        batch_size: int = 32,
        nms_thr: float | None = 0.9,
        rescore_thr: float = 0.2,
        det_thr: float = 0.3,
    ) -> None:
        if batch_size < 1:
            raise VitPoseError(f"batch_size must be >= 1, got {batch_size}")
        self.model = check_pose_model(model).eval()
        bb = model.config.backbone_config
        height, width = bb.image_size
        self.processor = processor or VitPoseImageProcessor(size={"height": height, "width": width})
        size = getattr(self.processor, "size", None)
        if getattr(self.processor, "do_affine_transform", True) and size != {"height": height, "width": width}:
            # Checked here, before any crop is made: crops of another size cost memory (gigabytes for a hostile
            # preprocessor_config.json) and then fail in the model with a message about pixel_values.
            raise VitPoseError(
                f"the processor crops {_size_text(size)} but the model takes {width}x{height} (width x height, its "
                f"config's backbone_config.image_size {[height, width]}): make the processor with "
                f"size={{'height': {height}, 'width': {width}}}, or fix the preprocessor_config.json that came "
                "with the checkpoint"
            )
        self.codec = UDPHeatmapCodec(input_size=model.config.input_size, heatmap_size=model.config.heatmap_size)
        self.flip_test = flip_test
        self.batch_size = int(batch_size)
        self.nms_thr = nms_thr
        self.rescore_thr = rescore_thr
        self.det_thr = det_thr
        self._layout_declared = False
        if isinstance(dataset, (str, os.PathLike)):  # a name, "3" or a custom data set file; the model checks ints
            dataset = parse_dataset(dataset)
        if dataset is not None and not model.config.selects_dataset:
            # A single-head model: `dataset` declares the layout of its keypoints (names, skeleton, flip pairs,
            # sigmas), e.g. a ViTPose trained on MPII.
            info = get_dataset_info(dataset)
            head_k = model.config.num_keypoints_for(0)
            if info.num_keypoints != head_k:
                raise VitPoseError(
                    f"dataset {info.name!r} has {info.num_keypoints} keypoints but this single-data-set model "
                    f"predicts {head_k}: leave dataset unset, or use a checkpoint trained on {info.name}"
                )
            self.dataset_index = 0
            self.dataset = dataclasses.replace(info, dataset_index=0)
            self._layout_declared = True
        else:
            self.dataset_index = self._resolve_dataset(dataset)
            self.dataset = dataset_info_for(model, self.dataset_index)
        if isinstance(detector, str):  # a wrong name or HOG for animals: one error now, not one per image later
            check_detector_name(detector, animals=self.dataset.is_animal)
        self._detector = detector if detector is None or isinstance(detector, str) else check_detector(detector)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str] = "usyd-community/vitpose-base-simple",
        *,
        device: str | torch.device | None = "auto",
        dtype: torch.dtype | str | None = None,
        detector: Any = None,
        **kwargs: Any,
    ) -> PoseEstimator:
        """Load a checkpoint (hub id, hub-format directory or original `.pth`) and wrap it.

        `device`: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N", "mps". `dtype`: "auto" (float16 on
        CUDA, float32 elsewhere), "float32", "float16", "bfloat16" (`vitpose.device.resolve_dtype`); None: float32.
        Other keyword arguments are those of `PoseEstimator` (flip_test, dataset, batch_size, nms_thr, ...) or hub
        options (revision, ...).
        """
        from vitpose.device import resolve_dtype

        hub = hub_options(kwargs, pop=True)
        place = resolve_device(device)
        dtype = resolve_dtype(dtype, place)  # before the checkpoint is read: "auto" needs the device
        model = VitPoseForPoseEstimation.from_pretrained(source, device=place, dtype=dtype, **hub)
        processor = VitPoseImageProcessor.from_pretrained(source, **hub)
        return cls(model, processor, detector, **kwargs)

    def _resolve_dataset(self, dataset: str | int | DatasetInfo | None) -> int:
        cfg = self.model.config
        if dataset is None:
            return 0
        if isinstance(dataset, (str, DatasetInfo)):
            index = get_dataset_info(dataset).dataset_index
        else:
            index = int(dataset)
        cfg.check_dataset_index(index, dataset=dataset)
        return index

    def with_detector(self, detector: Any) -> PoseEstimator:
        """This estimator (the same model, processor and settings, shared) with another person detector: a
        `PersonDetector` or a name, as `detector=` of the constructor."""
        if isinstance(detector, str):
            check_detector_name(detector, animals=self.dataset.is_animal)
        view = copy.copy(self)
        view._detector = detector if detector is None or isinstance(detector, str) else check_detector(detector)
        return view

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def detector(self) -> Any:
        """The person detector, built on first use when it was given by name or left to "auto"."""
        if self._detector is None or isinstance(self._detector, str):
            from vitpose.detectors import build_detector

            self._detector = build_detector(
                self._detector or "auto",
                device=self.device,
                det_thr=self.det_thr,
                animals=self.dataset.is_animal,
            )
        return self._detector

    # ------------------------------------------------------------------ inference
    def __call__(
        self, images: ImageSource | Sequence[ImageSource], boxes: Any = None, box_scores: Any = None
    ) -> PoseResult | list[PoseResult]:
        """One `PoseResult` for one image, a list for a list. See `predict`."""
        if isinstance(images, (list, tuple)):
            return self.predict(images, boxes=boxes, box_scores=box_scores)
        as_list = None if boxes is None else [boxes]
        scores_list = None if box_scores is None else [box_scores]
        return self.predict([images], boxes=as_list, box_scores=scores_list)[0]

    def predict(
        self,
        images: Sequence[ImageSource],
        boxes: Sequence[Any] | None = None,
        box_scores: Sequence[Any] | None = None,
        regions: Sequence[tuple[Any, Any] | None] | None = None,
    ) -> list[PoseResult]:
        """Poses for every image: paths, PIL images or arrays.

        Args:
            images: the images.
            boxes: optional, per image, COCO [x, y, w, h] person boxes; the detector runs where they are not given.
                Given boxes yield one pose each (no NMS).
            box_scores: optional, per image, the scores of the given boxes (default 1).
            regions: optional, instead of boxes, per image `(centers (n, 2), scales (n, 2))` crop regions in pixels
                (see `iter_predict`).
        """
        return list(self.iter_predict(images, boxes=boxes, box_scores=box_scores, regions=regions))

    def iter_predict(
        self,
        images: Iterable[ImageSource],
        boxes: Sequence[Any] | None = None,
        box_scores: Sequence[Any] | None = None,
        errors: str = "raise",
        image_batch: int | None = None,
        regions: Sequence[tuple[Any, Any] | None] | None = None,
        with_images: bool = False,
    ) -> Iterator[Any]:
        """Stream results in input order, reading and detecting `image_batch` images at a time.

        The work runs as overlapped stages (see "The job runner" in the design notes): images are decoded a few
        at a time on the I/O pool, while a thread detects and crops the next batch and another runs the network
        and decodes the heatmaps of the one before; the caller gets each result as soon as its batch is done. The
        results, their order and the errors are those of running the stages one after another; memory is bounded
        by the stages' queues (a few image batches of decoded images, up to four network batches of crops), not
        by the input. Closing the iterator early (or an interruption) stops the stages and waits for the network
        batch in progress.

        errors: "raise" stops at the first unreadable input; "report" yields a `FailedImage` in its place and goes
        on (what `vitpose predict` does).
        regions: instead of boxes, per image the crop regions themselves: `(centers (n, 2), scales (n, 2))` in
        pixels, used as given (no aspect correction, no padding), as data sets that annotate centre and scale
        (MPII) are evaluated. The results' `boxes` are then the regions as [cx - w/2, cy - h/2, w, h].
        with_images: yield `(result, image)` pairs, the image as decoded for the network (RGB uint8 (H, W, 3);
            None for a `FailedImage`), so that a caller can draw on it without reading the file again.
        """
        if errors not in ("raise", "report"):
            raise VitPoseError(f"errors must be 'raise' or 'report', got {errors!r}")
        if regions is not None and boxes is not None:
            raise VitPoseError("pass boxes or regions, not both")
        image_batch = image_batch or max(1, min(self.batch_size, 16))
        given = None if boxes is None else list(boxes)
        if regions is not None:
            given = [None if r is None else _regions_to_boxes(*r) for r in regions]
        given_scores = None if box_scores is None else list(box_scores)
        if given is not None and isinstance(images, Sized) and len(given) != len(images):  # before any work
            raise VitPoseError(f"got boxes for {len(given)} images but {len(images)} images")
        return self._stream(images, given, given_scores, errors, image_batch, with_images)

    def _stream(self, images, given, given_scores, errors, image_batch, with_images) -> Iterator[Any]:
        """The stages of `iter_predict`: read (I/O pool, `READ_AHEAD` images ahead) -> detect and crop (a thread)
        -> network, heatmap decoding, rescoring and NMS (a thread) -> the caller."""
        if given is None or any(g is None for g in given):
            # A detector given by name is built here, on the caller's thread, before the stages start: loading it
            # may warn (HOG's quality note) or silence libraries' warnings, which must not happen on another
            # thread while the stages run (Python's warning state is shared by all threads).
            self.detector  # noqa: B018
        reads = ordered_map(
            functools.partial(_read_one, errors=errors), enumerate(images), window=READ_AHEAD, pool=io_pool()
        )
        prepared = background(self._prepare(reads, given, given_scores, errors, image_batch), maxsize=2, name="prepare")
        with contextlib.closing(background(self._infer(prepared), maxsize=1, name="network")) as chunks:
            for chunk in chunks:
                for result, rgb in chunk:
                    yield (result, rgb) if with_images else result

    # ------------------------------------------------------------------ the stages
    def _prepare(self, reads, given, given_scores, errors, image_batch) -> Iterator[_Chunk | _Batch]:
        """Read images -> per `image_batch` images: its `_Batch`es of crops, then its `_Chunk` (which ends it)."""
        chunk: list[tuple[int, np.ndarray | None, str | None, FailedImage | None]] = []
        count = 0
        try:
            with torch.inference_mode():  # per thread in PyTorch: this stage's own
                for read in reads:
                    chunk.append(read)
                    count += 1
                    if len(chunk) == image_batch:
                        yield from self._prepare_chunk(chunk, given, given_scores, errors)
                        chunk = []
                if chunk:
                    yield from self._prepare_chunk(chunk, given, given_scores, errors)
        finally:
            reads.close()
        if given is not None and len(given) != count:
            raise VitPoseError(f"got boxes for {len(given)} images but {count} images")

    def _prepare_chunk(self, chunk, given, given_scores, errors) -> Iterator[_Chunk | _Batch]:
        loaded = [(position, rgb, name) for position, rgb, name, failed in chunk if failed is None]
        failures = {position: failed for position, _, _, failed in chunk if failed is not None}
        per_image: dict[int, tuple[np.ndarray, np.ndarray, bool, _Regions | None]] = {}
        to_detect = []
        for position, rgb, name in loaded:
            if given is not None and position < len(given) and given[position] is not None:
                region = given[position] if isinstance(given[position], _Regions) else None
                b = region.boxes if region is not None else normalize_boxes([given[position]], 1)[0]
                s = np.ones(len(b)) if given_scores is None else np.asarray(given_scores[position], np.float64)
                if s.shape != (len(b),):
                    raise VitPoseError(f"box_scores of image {position} have shape {s.shape}, expected ({len(b)},)")
                per_image[position] = (b, s, False, region)
            else:
                to_detect.append((position, rgb, name))
        if to_detect:
            rgbs = [rgb for _, rgb, _ in to_detect]
            names = [name for _, _, name in to_detect]
            detector = self.detector  # built here, outside the try: a detector that cannot load is not an input's fault
            try:
                detections: list[Any] = list(detector(rgbs, names))
            except DetectorError:
                raise
            except ValueError:
                # A detector's complaint about its input (say, a file missing from a --boxes file): find the image
                # it concerns by asking one image at a time, report it, keep the others.
                if errors == "raise":
                    raise
                detections = []
                for position, rgb, name in to_detect:
                    try:
                        detections.extend(detector([rgb], [name]))
                    except DetectorError:
                        raise
                    except ValueError as err:
                        failures[position] = FailedImage(name or f"image {position}", str(err))
                        detections.append(None)
            for (position, _, _), det in zip(to_detect, detections, strict=True):
                if det is not None:
                    boxes_ = np.asarray(det.boxes, np.float64)
                    per_image[position] = (boxes_, np.asarray(det.scores, np.float64), True, None)

        for position, rgb, name in loaded:  # boxes outside the image (or absurdly large): skipped, with a warning
            if position in per_image and per_image[position][3] is None:
                b, s, detected, _ = per_image[position]
                keep = usable_boxes(b, s, (rgb.shape[1], rgb.shape[0]), name or f"image {position}", stacklevel=4)
                if not keep.all():
                    per_image[position] = (b[keep], s[keep], detected, None)
        ready = [(position, rgb, name) for position, rgb, name in loaded if position in per_image]
        centers, scales = [], []
        for position, _, _ in ready:
            b, region = per_image[position][0], per_image[position][3]
            if region is not None:
                c, s = region.centers, region.scales
            else:
                try:
                    c, s = box_to_center_scale(
                        b, input_size=self.processor.input_size, padding=self.processor.padding_factor
                    )
                except ValueError as err:
                    raise VitPoseError(f"image {position}: {err}") from None
            centers.append(c)
            scales.append(s)
        info = _Chunk(
            rgbs={position: rgb for position, rgb, _ in loaded},
            order=[position for position, _, _, _ in chunk],
            failures=failures,
            ready=ready,
            per_image=per_image,
            centers=centers,
            scales=scales,
            num_keypoints=self.dataset.num_keypoints,
        )
        total = info.total
        # Crop `batch_size` boxes at a time (the boxes of several images share a batch, one image's boxes may span
        # batches): memory is bounded by the batch size, not by the number of boxes. Each crop is a function of its
        # own box only, so the results equal those of cropping all at once.
        images = [rgb for _, rgb, _ in ready]
        if self.device.type != "cpu" and total > self.batch_size and hasattr(self.processor, "_image_on"):
            # The batches of one image crop on the accelerator from one upload of it.
            images = [self.processor._image_on(rgb, i, self.device) for i, rgb in enumerate(images)]
        offsets = info.offsets
        for start in range(0, total, self.batch_size):
            stop = min(start + self.batch_size, total)
            batch_images, batch_centers, batch_scales = [], [], []
            first = int(np.searchsorted(offsets, start, side="right")) - 1
            for i in range(first, len(ready)):
                if offsets[i] >= stop:
                    break
                lo, hi = max(start, offsets[i]) - offsets[i], min(stop, offsets[i + 1]) - offsets[i]
                if hi > lo:
                    batch_images.append(images[i])
                    batch_centers.append(centers[i][lo:hi])
                    batch_scales.append(scales[i][lo:hi])
            # Fused crop + normalise (on the GPU when the model is there).
            pixel_values = self.processor.crop_regions(batch_images, batch_centers, batch_scales, device=self.device)
            yield _Batch(info, slice(start, stop), pixel_values.to(self.device, self.model.dtype))
        yield info  # after its batches: the network stage has decoded them all when it gets it

    def _infer(self, prepared: Iterator[_Chunk | _Batch]) -> Iterator[list[tuple[Any, np.ndarray | None]]]:
        """Crops -> heatmaps -> keypoints (into their chunk), then per chunk its results in input order (with the
        decoded images)."""
        index = self.dataset_index if self.model.config.selects_dataset else None
        pairs = self.dataset.flip_pairs_array() if self.flip_test and self._layout_declared else None
        try:
            with torch.inference_mode():  # per thread in PyTorch: this stage's own
                for item in prepared:
                    if isinstance(item, _Batch):
                        chunk, rows = item.chunk, item.rows
                        heatmaps = self.model(
                            item.pixel_values, dataset_index=index, flip_test=self.flip_test, flip_pairs=pairs
                        ).heatmaps
                        chunk.keypoints[rows], chunk.kpt_scores[rows] = self.codec.decode(
                            heatmaps, chunk.all_centers[rows], chunk.all_scales[rows]
                        )
                        del heatmaps, item
                        continue
                    results = self._results(item)
                    yield [
                        (item.failures[position], None)
                        if position in item.failures
                        else (results[position], item.rgbs[position])
                        for position in item.order
                    ]
        finally:
            prepared.close()

    def _results(self, chunk: _Chunk) -> dict[int, PoseResult]:
        """A chunk's keypoints -> one `PoseResult` per image: rescoring, then OKS-NMS over detected people."""
        keypoints, kpt_scores = chunk.keypoints, chunk.kpt_scores
        results: dict[int, PoseResult] = {}
        offset = 0
        for (position, rgb, name), s in zip(chunk.ready, chunk.scales, strict=True):
            boxes, box_scores, detected, _ = chunk.per_image[position]
            n = len(boxes)
            sl = slice(offset, offset + n)
            offset += n
            scores = instance_scores(box_scores, kpt_scores[sl], self.rescore_thr)
            result = PoseResult(
                keypoints=keypoints[sl],
                keypoint_scores=kpt_scores[sl],
                boxes=boxes.astype(np.float32).reshape(-1, 4),
                box_scores=box_scores.astype(np.float32),
                scores=scores,
                dataset=self.dataset,
                image_size=(rgb.shape[1], rgb.shape[0]),
                file_name=name,
            )
            if detected and self.nms_thr is not None and n > 1:
                keep = pose_nms(
                    result.keypoints, result.scores, np.asarray(self.dataset.sigmas), self.nms_thr, scales=s
                )
                result = result.select(keep)
                result.extra["suppressed"] = n - len(keep)
            results[position] = result
        return results


READ_AHEAD = 4
"""Images decoded ahead of the detect-and-crop stage, on the I/O pool."""


def _read_one(item: tuple[int, ImageSource], errors: str) -> tuple[int, Any, Any, FailedImage | None]:
    """(position, source) -> (position, RGB uint8 (H, W, 3), file name, None), or (position, None, None, why) where
    it cannot be read and `errors="report"`."""
    position, source = item
    try:
        rgb, name = load_image(source)
    except ImageReadError as err:
        if errors == "raise":
            raise
        return position, None, None, FailedImage(_describe(source), err.reason if err.path else str(err))
    return position, rgb, name, None


@dataclass
class _Chunk:
    """One `image_batch` of images between the stages: their boxes and crop regions, the keypoints the network
    stage decodes into (`keypoints` (total, K, 2), `kpt_scores` (total, K)), and how to put them back."""

    rgbs: dict[int, np.ndarray]
    order: list[int]
    failures: dict[int, FailedImage]
    ready: list[tuple[int, np.ndarray, str | None]]
    per_image: dict[int, tuple[np.ndarray, np.ndarray, bool, Any]]
    centers: list[np.ndarray]
    scales: list[np.ndarray]
    num_keypoints: int

    def __post_init__(self) -> None:
        counts = [len(c) for c in self.centers]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.total = int(self.offsets[-1])
        empty = np.zeros((0, 2), np.float64)
        self.all_centers = np.concatenate(self.centers) if self.centers else empty
        self.all_scales = np.concatenate(self.scales) if self.scales else empty
        self.keypoints = np.zeros((self.total, self.num_keypoints, 2), np.float32)
        self.kpt_scores = np.zeros((self.total, self.num_keypoints), np.float32)


@dataclass
class _Batch:
    """One network batch of a chunk's crops: the `rows` of its boxes."""

    chunk: _Chunk
    rows: slice
    pixel_values: torch.Tensor


@dataclass
class _Regions:
    """Crop regions given as centres and scales (pixels) rather than boxes."""

    centers: np.ndarray
    scales: np.ndarray

    @property
    def boxes(self) -> np.ndarray:
        return np.concatenate([self.centers - self.scales / 2, self.scales], axis=1)


def _regions_to_boxes(centers: Any, scales: Any) -> _Regions:
    c = np.asarray(centers, np.float64).reshape(-1, 2)
    s = np.asarray(scales, np.float64).reshape(-1, 2)
    if c.shape != s.shape:
        raise VitPoseError(f"regions: centers {c.shape} and scales {s.shape} must both be (n, 2)")
    if not (np.isfinite(c).all() and np.isfinite(s).all() and (s > 0).all()):
        raise VitPoseError("regions: centers must be finite and scales finite and > 0")
    return _Regions(c, s)


def _size_text(size: Any) -> str:
    if isinstance(size, dict) and {"height", "width"} <= set(size):
        return f"{size['width']}x{size['height']} (width x height)"
    return repr(size)


def _describe(source: Any) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else type(source).__name__
