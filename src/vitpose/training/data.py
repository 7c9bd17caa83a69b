"""Top-down training data: one sample per annotated instance of a COCO-format keypoint file.

Each sample is the instance's crop (augmented as the original ViTPose, `vitpose.training.augment`), normalised as
the processor does, with its UDP Gaussian heatmap targets and per-keypoint target weights from the SAME
`UDPHeatmapCodec` that decodes at inference.

Randomness is a pure function of (seed, epoch, sample): `np.random.default_rng([seed, epoch, index])`. The samples of
an epoch therefore look the same whichever process or data-loader worker draws them, in any order, which is what
makes an interrupted run resume bit for bit and a multi-process run see the augmentations of a single-process run.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vitpose.config import heatmap_size_for
from vitpose.datasets import DatasetInfo
from vitpose.datasets.coco import clip_gt_box, read_json
from vitpose.datasets.custom import infer_dataset_info, resolve_dataset_info
from vitpose.datasets.mpii import load_mpii
from vitpose.errors import ImageReadError, VitPoseError
from vitpose.media import ImageReadWarning, find_image_files, load_image
from vitpose.ops.codec import UDPHeatmapCodec
from vitpose.ops.geometry import IMAGENET_MEAN, IMAGENET_STD, box_to_center_scale
from vitpose.training.augment import AugmentConfig, CropGeometry, sample_geometry

__all__ = [
    "Instances",
    "KeypointDataset",
    "MultiDataset",
    "ResumableSampler",
    "TrainingSample",
    "collate_samples",
    "load_coco_instances",
    "load_mpii_instances",
    "read_annotations",
]

_WHOLEBODY_PARTS = ("foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")


@dataclass
class Instances:
    """The annotated instances of one keypoint file, after the original's filtering.

    Attributes:
        image_paths: (M,) image files; image_ids: (M,) their ids in the annotations.
        image_index: (N,) which image each instance is in.
        boxes: (N, 4) cleaned COCO xywh boxes (clipped to the image as the original).
        keypoints: (N, K, 2) image pixels; visible: (N, K) 1 labelled, 0 not.
        annotation_ids: (N,) ids of the annotations.
        centers, scales: (N, 2) crop centres and extents in pixels where the file gives them (MPII); None: from the
            boxes (`box_to_center_scale`, padding 1.25).
    """

    image_paths: list[Path]
    image_ids: list[Any]
    image_sizes: list[tuple[int, int]]
    image_index: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    annotation_ids: list[Any]
    centers: np.ndarray | None = None
    scales: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.image_index)


def read_annotations(annotations: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[Any, str]:
    """A keypoint annotation file (or an already loaded object) and a name for messages, read by
    `vitpose.datasets.coco.read_json` (errors name the file)."""
    if isinstance(annotations, (Mapping, list)):
        return annotations, "annotations"
    data = read_json(annotations, "annotation", expected="a COCO-format keypoint file")
    return data, str(annotations)


def _flat_keypoints(ann: Mapping[str, Any], info: DatasetInfo) -> list[float]:
    values = list(ann["keypoints"])
    if info.name == "wholebody" and all(part in ann for part in _WHOLEBODY_PARTS):
        for part in _WHOLEBODY_PARTS:  # COCO-WholeBody keeps body, feet, face and hands in separate fields
            values += list(ann[part])
    return values


def load_coco_instances(
    annotations: str | os.PathLike[str] | Mapping[str, Any],
    images: str | os.PathLike[str],
    info: DatasetInfo,
    *,
    source: str | None = None,
    unlabelled: bool = False,
) -> Instances:
    """Read the training instances of a COCO-format keypoint file (mmpose 0.x ``TopDownCocoDataset`` filtering).

    Kept: non-crowd annotations with a box that is non-empty after clipping to the image, a positive `area` where
    given, and at least one labelled keypoint. `unlabelled`: also those with a box and no labelled keypoint (no
    `keypoints` field, or all zero), every keypoint unlabelled (target weight 0): for a loss that needs no labels,
    as distillation from a teacher's heatmaps.

    Raises:
        ValueError: unreadable file, missing sections, a keypoint count that is not the data set's, missing images.
    """
    data, name = read_annotations(annotations)
    name = source or name
    if not isinstance(data, Mapping) or not isinstance(data.get("images"), list):
        raise VitPoseError(f"{name}: not a COCO-format keypoint file (no 'images' list)")
    if not isinstance(data.get("annotations"), list):
        raise VitPoseError(f"{name}: not a COCO-format keypoint file (no 'annotations' list)")
    root = Path(images)
    if not root.is_dir():
        raise VitPoseError(f"images folder not found: {root}")
    k = info.num_keypoints
    image_by_id: dict[Any, dict[str, Any]] = {}
    for img in data["images"]:
        if not isinstance(img, Mapping) or "id" not in img or "file_name" not in img:
            raise VitPoseError(f"{name}: every image needs 'id' and 'file_name', got {img!r}"[:300])
        image_by_id[img["id"]] = dict(img)

    kept: list[tuple[Any, list[float], list[float], Any]] = []
    for ann in data["annotations"]:
        if not isinstance(ann, Mapping) or ann.get("iscrowd", 0):
            continue
        if "keypoints" not in ann:
            if not (unlabelled and "bbox" in ann):
                continue
            ann = {**ann, "keypoints": [0.0] * (3 * k)}
        values = _flat_keypoints(ann, info)
        if len(values) != 3 * k:
            raise VitPoseError(
                f"{name}: annotation {ann.get('id')} has {len(values)} keypoint values ({len(values) / 3:g} "
                f"keypoints) but the data set '{info.name}' has {k} keypoints (3 values each); pass the right "
                "--dataset (a known name or a data set JSON file)"
            )
        if not unlabelled and (max(values, default=0) <= 0 or ann.get("num_keypoints", 1) == 0):
            continue
        img = image_by_id.get(ann.get("image_id"))
        if img is None:
            raise VitPoseError(f"{name}: annotation {ann.get('id')} refers to image_id {ann.get('image_id')!r}, "
                             "which is not in 'images'")  # fmt: skip
        if "bbox" not in ann:
            raise VitPoseError(f"{name}: annotation {ann.get('id')} has keypoints but no 'bbox'")
        kept.append((img["id"], values, list(ann["bbox"]), ann.get("id")))

    used_ids = list(dict.fromkeys(i for i, _, _, _ in kept))
    paths = find_image_files(root, [(i, str(image_by_id[i]["file_name"])) for i in used_ids])
    sizes: dict[Any, tuple[int, int]] = {}
    for image_id in used_ids:
        img = image_by_id[image_id]
        if "width" in img and "height" in img:
            sizes[image_id] = (int(img["width"]), int(img["height"]))
        else:
            from PIL import Image

            with Image.open(paths[image_id]) as im:
                sizes[image_id] = im.size

    position = {image_id: i for i, image_id in enumerate(used_ids)}
    boxes, kps, vis, index, ann_ids = [], [], [], [], []
    for image_id, values, bbox, ann_id in kept:
        box = clip_gt_box(bbox, *sizes[image_id])  # mmpose's clipping, as the evaluation's ground-truth boxes
        if box is None:
            continue
        arr = np.asarray(values, np.float64).reshape(k, 3)
        boxes.append(box)
        kps.append(arr[:, :2])
        vis.append(np.minimum(1.0, arr[:, 2] > 0))
        index.append(position[image_id])
        ann_ids.append(ann_id)
    if not boxes:
        what = "a valid box" if unlabelled else "labelled keypoints and a valid box"
        raise VitPoseError(f"{name}: no annotation with {what} to train on")
    return Instances(
        image_paths=[paths[i] for i in used_ids],
        image_ids=used_ids,
        image_sizes=[sizes[i] for i in used_ids],
        image_index=np.asarray(index, np.int64),
        boxes=np.asarray(boxes, np.float64),
        keypoints=np.asarray(kps, np.float64),
        visible=np.asarray(vis, np.float32),
        annotation_ids=ann_ids,
    )


def load_mpii_instances(
    annotations: str | os.PathLike[str], images: str | os.PathLike[str], info: DatasetInfo
) -> Instances:
    """The people of an MPII annotation file (mmpose 0.x JSON list), with the original's centre and scale (centre
    moved down by 15 x scale, scale x 1.25, square; 0-based pixels), read by `vitpose.datasets.mpii.load_mpii`."""
    if info.num_keypoints != 16:
        raise VitPoseError(f"{annotations} is an MPII file (16 joints) but the data set '{info.name}' has "
                         f"{info.num_keypoints} keypoints")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # head-box notes concern PCKh, not training
        samples = [s for s in load_mpii(annotations) if np.any(s.visible)]
    if not samples:
        raise VitPoseError(f"{annotations}: no person with labelled joints to train on")
    names = list(dict.fromkeys(s.image for s in samples))
    found = find_image_files(images, [(n, n) for n in names])
    position = {n: i for i, n in enumerate(names)}
    centers = np.array([s.center for s in samples], np.float64)
    scales = np.array([s.scale for s in samples], np.float64)
    return Instances(
        image_paths=[found[n] for n in names],
        image_ids=names,
        image_sizes=[(0, 0)] * len(names),
        image_index=np.array([position[s.image] for s in samples], np.int64),
        boxes=np.concatenate([centers - scales / 2, scales], axis=1),
        keypoints=np.array([s.joints[:, :2] for s in samples], np.float64),
        visible=np.array([s.visible for s in samples], np.float32),
        annotation_ids=list(range(len(samples))),
        centers=centers,
        scales=scales,
    )


@dataclass
class TrainingSample:
    """One sample with everything that made it (`KeypointDataset.sample`).

    Attributes:
        pixel_values: (3, H, W) float32 normalised crop.
        labels: (K, h, w) float32 UDP Gaussian targets; label_weights: (K,) float32 target weights.
        dataset_index: the ViTPose++ data set / head index.
        crop: (H, W, 3) uint8 RGB crop before normalisation.
        keypoints: (K, 2) keypoints in crop pixels (channel order after a flip); visible: (K,).
        geometry: the crop's centre, scale, rotation, flip and matrix.
    """

    pixel_values: torch.Tensor
    labels: torch.Tensor
    label_weights: torch.Tensor
    dataset_index: int
    crop: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    geometry: CropGeometry


class KeypointDataset(torch.utils.data.Dataset):
    """Top-down training samples from a COCO-format keypoint file.

    Args:
        annotations: COCO-format keypoint JSON (path or loaded dict).
        images: folder of the images (`file_name` relative to it, or its base name).
        dataset: the data set (known name or index, JSON file, dict or `DatasetInfo`); None infers it from the file.
        input_size: network input (width, height).
        heatmap_size: heatmap (width, height); default a 4x ViTPose's at this input (`heatmap_size_for`: input / 4).
        augment: apply the original augmentations (False: the plain evaluation crop, for checks and overfitting).
        augmentation: probabilities and ranges.
        sigma: Gaussian sigma of the targets in heatmap pixels (2, as the original).
        use_joint_weights: multiply the target weights by the data set's joint weights (mmpose's
            `use_different_joint_weights`; off in every ViTPose config).
        seed: base of the per-sample random generators.
        padding: box padding (1.25, as the original).
        image_mean, image_std: normalisation, as `VitPoseImageProcessor`.
        cache_images: keep decoded images in memory (None: when there are at most 256 images).
        unlabelled: also the annotations with a box and no labelled keypoint (`load_coco_instances`).
    """

    def __init__(
        self,
        annotations: str | os.PathLike[str] | Mapping[str, Any],
        images: str | os.PathLike[str],
        dataset: Any = None,
        *,
        input_size: Sequence[int] = (192, 256),
        heatmap_size: Sequence[int] | None = None,
        augment: bool = True,
        augmentation: AugmentConfig | None = None,
        sigma: float = 2.0,
        use_joint_weights: bool = False,
        seed: int = 0,
        padding: float = 1.25,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        cache_images: bool | None = None,
        unlabelled: bool = False,
    ) -> None:
        data, name = read_annotations(annotations)
        self.source = name
        self.info = infer_dataset_info(data, name) if dataset is None else resolve_dataset_info(dataset)
        if isinstance(data, list):
            if not isinstance(annotations, (str, os.PathLike)):
                raise VitPoseError("an MPII annotation list must be given as its file path")
            self.instances = load_mpii_instances(annotations, images, self.info)
        else:
            self.instances = load_coco_instances(data, images, self.info, source=name, unlabelled=unlabelled)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        if heatmap_size is None:
            heatmap_size = heatmap_size_for(self.input_size)
        self.codec = UDPHeatmapCodec(input_size=self.input_size, heatmap_size=heatmap_size, sigma=sigma)
        self.augment = augment
        self.augmentation = augmentation or AugmentConfig()
        self.use_joint_weights = use_joint_weights
        self.seed = int(seed)
        self.seed_offset = 0  # set by MultiDataset: samples are seeded with their index in the combined set
        self.epoch = 0
        if self.instances.centers is not None and self.instances.scales is not None:
            self.centers, self.scales = self.instances.centers, self.instances.scales
        else:
            self.centers, self.scales = box_to_center_scale(self.instances.boxes, self.input_size, padding)
        self._mean = np.asarray(image_mean, np.float32) * 255.0
        self._std = np.asarray(image_std, np.float32) * 255.0
        if cache_images is None:
            cache_images = len(self.instances.image_paths) <= 256
        self._cache: OrderedDict[int, np.ndarray] | None = OrderedDict() if cache_images else None

    def __len__(self) -> int:
        return len(self.instances)

    @property
    def num_keypoints(self) -> int:
        return self.info.num_keypoints

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.codec.heatmap_size

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose augmentations plain integer indices draw (keys `(epoch, index)` carry their own)."""
        self.epoch = int(epoch)

    def image(self, image_index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB image, read as the evaluation pipeline reads it (Pillow, EXIF orientation).

        Raises:
            ImageReadError: the image cannot be read (the message names the file); `sample` skips such samples.
        """
        if self._cache is not None and image_index in self._cache:
            return self._cache[image_index]
        rgb, _ = load_image(self.instances.image_paths[image_index])
        if self._cache is not None:
            self._cache[image_index] = rgb
        return rgb

    def _samples_of(self, image_index: int) -> int:
        return int(np.count_nonzero(np.asarray(self.instances.image_index) == image_index))

    def rng(self, index: int, epoch: int) -> np.random.Generator:
        """The random generator of sample `index` in `epoch`: a pure function of (seed, epoch, global index)."""
        return np.random.default_rng([self.seed, int(epoch), self.seed_offset + int(index)])

    def sample(self, index: int, epoch: int | None = None, augment: bool | None = None) -> TrainingSample:
        """Sample `index` of `epoch` with its crop, keypoints in crop pixels and geometry (for checks and drawing)."""
        epoch = self.epoch if epoch is None else epoch
        inst = self.instances
        image_index = int(inst.image_index[index])
        try:
            image = self.image(image_index)
            readable = True
        except ImageReadError as err:
            # One unreadable image does not end a training run: its samples are kept (the batches, the random
            # streams and a resume stay as they were) but blank, with zero target weights, so they add nothing to
            # the loss; the warning names the file (once per file and process).
            warnings.warn(
                f"{self.source}: {err}; its {self._samples_of(image_index)} sample(s) are skipped (zero weight)",
                ImageReadWarning,
                stacklevel=2,
            )
            image, readable = np.zeros((1, 1, 3), np.uint8), False
        if augment is None:
            augment = self.augment
        rng = self.rng(index, epoch) if augment else None
        geometry = sample_geometry(
            self.centers[index],
            self.scales[index],
            inst.keypoints[index],
            inst.visible[index],
            image.shape[1],
            self.info,
            self.input_size,
            rng,
            self.augmentation,
        )
        w, h = self.input_size
        crop = cv2.warpAffine(image, geometry.matrix, (w, h), flags=cv2.INTER_LINEAR)
        kp = inst.keypoints[index][geometry.permutation]
        keypoints = kp @ geometry.matrix[:, :2].T + geometry.matrix[:, 2]
        visible = inst.visible[index][geometry.permutation]
        heatmaps, weights = self.codec.encode(keypoints[None], visible[None])
        weights = weights[0] if readable else np.zeros_like(weights[0])
        if self.use_joint_weights:
            weights = weights * np.asarray(self.info.joint_weights, np.float32)
        pixels = (crop.astype(np.float32) - self._mean) / self._std
        return TrainingSample(
            pixel_values=torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))),
            labels=torch.from_numpy(heatmaps[0]),
            label_weights=torch.from_numpy(weights.astype(np.float32)),
            dataset_index=self.info.dataset_index,
            crop=crop,
            keypoints=keypoints,
            visible=visible,
            geometry=geometry,
        )

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """`index` (this dataset's current epoch) or `(epoch, index)` -> dict of `pixel_values` (3, H, W),
        `labels` (K, h, w), `label_weights` (K,), `dataset_index`."""
        epoch, index = (self.epoch, key) if isinstance(key, (int, np.integer)) else key
        s = self.sample(int(index), int(epoch))
        return {
            "pixel_values": s.pixel_values,
            "labels": s.labels,
            "label_weights": s.label_weights,
            "dataset_index": s.dataset_index,
        }


class MultiDataset(torch.utils.data.Dataset):
    """Several `KeypointDataset`s as one (ViTPose++ training over several data sets): a sample's global index
    picks the data set; each sample keeps its own `dataset_index` and keypoint count.

    A key is an index or `(epoch, index)`; each sample's random generator is seeded with its index in the
    combined set (`seed_offset`), so every sample of every data set has its own stream."""

    def __init__(self, datasets: Sequence[KeypointDataset]) -> None:
        if not datasets:
            raise VitPoseError("no training data set")
        self.datasets = list(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])
        for dataset, offset in zip(self.datasets, self.offsets[:-1], strict=False):
            dataset.seed_offset = int(offset)
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def locate(self, index: int) -> tuple[KeypointDataset, int]:
        """Global index -> (data set, local index)."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range [0, {len(self)})")
        which = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.datasets[which], index - int(self.offsets[which])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = (self.epoch, key) if isinstance(key, (int, np.integer)) else key
        dataset, local = self.locate(int(index))
        return {**dataset[(int(epoch), local)], "sample_index": int(index)}


def collate_samples(samples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack samples into a batch; samples of data sets with fewer keypoints are zero-padded (weight 0).

    Returns `pixel_values` (B, 3, H, W), `labels` (B, K, h, w), `label_weights` (B, K), `dataset_index` (B,) with K
    the largest keypoint count in the batch, and `sample_index` (B,) int64 (each sample's index in the training
    set, from `MultiDataset`) where the samples carry it.
    """
    if not samples:
        raise VitPoseError("empty batch")
    k = max(int(s["labels"].shape[0]) for s in samples)
    _, h, w = samples[0]["labels"].shape
    labels = torch.zeros((len(samples), k, h, w), dtype=torch.float32)
    weights = torch.zeros((len(samples), k), dtype=torch.float32)
    for i, s in enumerate(samples):
        n = s["labels"].shape[0]
        labels[i, :n] = s["labels"]
        weights[i, :n] = s["label_weights"]
    batch = {
        "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
        "labels": labels,
        "label_weights": weights,
        "dataset_index": torch.tensor([int(s["dataset_index"]) for s in samples], dtype=torch.long),
    }
    if all("sample_index" in s for s in samples):
        batch["sample_index"] = torch.tensor([int(s["sample_index"]) for s in samples], dtype=torch.long)
    return batch


class ResumableSampler(torch.utils.data.Sampler):
    """Epoch-seeded shuffling, sharded over processes like `DistributedSampler`, that can start mid-epoch.

    Yields `(epoch, index)` keys. The epoch's order is a permutation drawn from `(seed, epoch)`; it is padded by
    repetition to a multiple of `num_replicas` (as `DistributedSampler`) and rank r takes every `num_replicas`-th
    entry from r. `set_epoch(epoch, start)` skips the first `start` entries of this rank's share (the samples an
    interrupted run had already trained on).
    """

    def __init__(self, size: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0, num_replicas: int = 1):
        if size < 1:
            raise VitPoseError("the training set is empty")
        self.size = int(size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.rank = int(rank)
        self.num_replicas = int(num_replicas)
        self.epoch = 0
        self.start = 0
        self.per_replica = -(-self.size // self.num_replicas)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = int(epoch)
        self.start = int(start)

    def order(self, epoch: int) -> np.ndarray:
        """This rank's sample indices for `epoch`, (per_replica,)."""
        if self.shuffle:
            perm = np.random.default_rng([self.seed, int(epoch), 0x5A3]).permutation(self.size)
        else:
            perm = np.arange(self.size)
        total = self.per_replica * self.num_replicas
        if total > self.size:
            perm = np.concatenate([perm, np.resize(perm, total - self.size)])
        return perm[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.order(self.epoch)[self.start :]:
            yield (self.epoch, int(index))

    def __len__(self) -> int:
        return max(0, self.per_replica - self.start)
