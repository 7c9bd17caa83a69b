"""One result type for the poses of one image: plain arrays, with COCO, supervision and drawing adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vitpose.datasets import DatasetInfo
from vitpose.errors import MissingDependencyError, VitPoseError
from vitpose.media import load_image


@dataclass
class PoseResult:
    """The people (or animals) found in one image.

    Attributes:
        keypoints: (N, K, 2) float32 x, y in image pixels.
        keypoint_scores: (N, K) float32 heatmap maxima.
        boxes: (N, 4) float32 COCO [x, y, width, height] the poses were estimated in.
        box_scores: (N,) float32 detector scores (1 for boxes given without scores).
        scores: (N,) float32 instance scores: box score x mean of the keypoint scores above 0.2 (the original's
            rescoring; 0 when no keypoint is above 0.2).
        dataset: keypoint names, skeleton and colours of the head that produced the keypoints.
        image_size: (width, height) of the image.
        file_name: the image's path or name, where it came from a file.
        image_id: the COCO image id, where known.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    scores: np.ndarray
    dataset: DatasetInfo
    image_size: tuple[int, int]
    file_name: str | None = None
    image_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.boxes)
        k = self.dataset.num_keypoints
        shapes = {
            "keypoints": (self.keypoints.shape, (n, k, 2)),
            "keypoint_scores": (self.keypoint_scores.shape, (n, k)),
            "boxes": (self.boxes.shape, (n, 4)),
            "box_scores": (self.box_scores.shape, (n,)),
            "scores": (self.scores.shape, (n,)),
        }
        for name, (got, want) in shapes.items():
            if tuple(got) != want:
                raise VitPoseError(f"PoseResult.{name} has shape {tuple(got)}, expected {want}")

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def num_keypoints(self) -> int:
        return self.dataset.num_keypoints

    def select(self, index: np.ndarray | list[int] | slice) -> PoseResult:
        """The instances at `index`, as a new result."""
        return PoseResult(
            keypoints=self.keypoints[index],
            keypoint_scores=self.keypoint_scores[index],
            boxes=self.boxes[index],
            box_scores=self.box_scores[index],
            scores=self.scores[index],
            dataset=self.dataset,
            image_size=self.image_size,
            file_name=self.file_name,
            image_id=self.image_id,
            extra=dict(self.extra),
        )

    def to_coco(
        self, image_id: int | None = None, category_id: int = 1, file_name: bool = True
    ) -> list[dict[str, Any]]:
        """COCO keypoint results: one dict per instance with `image_id`, `category_id`, `keypoints` (x, y, score
        for each keypoint, flat), `score`, plus `bbox` and (with `file_name`) the image's `file_name`."""
        image_id = self.image_id if image_id is None else image_id
        if image_id is None:
            raise VitPoseError("to_coco needs an image_id: pass to_coco(image_id=...) or set result.image_id")
        flat = np.concatenate([self.keypoints, self.keypoint_scores[..., None]], axis=2)
        flat = flat.reshape(len(self), 3 * self.num_keypoints)
        out = []
        for i in range(len(self)):
            entry: dict[str, Any] = {
                "image_id": int(image_id),
                "category_id": int(category_id),
                "keypoints": [round(float(v), 3) for v in flat[i]],
                "score": float(self.scores[i]),
                "bbox": [round(float(v), 3) for v in self.boxes[i]],
            }
            if file_name and self.file_name is not None:
                entry["file_name"] = self.file_name
            out.append(entry)
        return out

    def to_supervision(self) -> Any:
        """`supervision.KeyPoints` with `xy` (N, K, 2) and `confidence` (N, K) (needs `pip install supervision`)."""
        try:
            import supervision as sv
        except ImportError as err:
            raise MissingDependencyError("to_supervision() needs supervision: pip install supervision") from err
        return sv.KeyPoints(
            xy=self.keypoints.astype(np.float32),
            confidence=self.keypoint_scores.astype(np.float32),
            class_id=np.zeros(len(self), dtype=int),
        )

    def draw(self, image: Any = None, kpt_thr: float = 0.3, draw_boxes: bool = True, **kwargs: Any) -> np.ndarray:
        """The image (RGB array or PIL) with skeletons, keypoints and (optionally) boxes drawn; a new (H, W, 3) RGB
        uint8 array. Without `image`, the result's own file (`file_name`) is read again."""
        from vitpose.visualization import draw_poses

        if image is None:
            if self.file_name is None:
                raise VitPoseError("this result did not come from a file: pass the image, result.draw(image)")
            image, _ = load_image(self.file_name)

        return draw_poses(
            image,
            self.keypoints,
            self.keypoint_scores,
            dataset=self.dataset,
            kpt_thr=kpt_thr,
            boxes=self.boxes if draw_boxes else None,
            **kwargs,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready lists."""
        return {
            "file_name": self.file_name,
            "image_id": self.image_id,
            "image_size": list(self.image_size),
            "dataset": self.dataset.name,
            "keypoint_names": list(self.dataset.keypoint_names),
            "instances": [
                {
                    "bbox": self.boxes[i].tolist(),
                    "box_score": float(self.box_scores[i]),
                    "score": float(self.scores[i]),
                    "keypoints": self.keypoints[i].tolist(),
                    "keypoint_scores": self.keypoint_scores[i].tolist(),
                }
                for i in range(len(self))
            ],
        }


def instance_scores(box_scores: np.ndarray, keypoint_scores: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """The original's rescoring: box score x mean of the keypoint scores above `threshold` (0 when none is).

    box_scores (N,), keypoint_scores (N, K) -> (N,) float32.
    """
    above = keypoint_scores > threshold
    count = above.sum(axis=1)
    mean = np.where(count > 0, (keypoint_scores * above).sum(axis=1) / np.maximum(count, 1), 0.0)
    return (box_scores * mean).astype(np.float32)
