"""One result type for the poses of one image: plain arrays, with COCO, supervision and drawing adapters."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vitpose.datasets import DatasetInfo
from vitpose.deprecation import renamed_kwargs
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
        self,
        image_id: int | str | None = None,
        category_id: int | Sequence[int] | np.ndarray = 1,
        file_name: bool = True,
        *,
        bbox: bool = True,
        decimals: int | None = 3,
    ) -> list[dict[str, Any]]:
        """COCO keypoint results: one dict per instance with `image_id`, `category_id`, `keypoints` (x, y, score
        for each keypoint, flat), `score`, plus `bbox` and (with `file_name`) the image's `file_name`.

        Args:
            image_id: the COCO image id (default: `self.image_id`); an integer, or a string, kept as it is (COCO
                annotation files may use string ids).
            category_id: one category for every instance, or one per instance.
            file_name: add the image's `file_name` (where known).
            bbox: add the box [x, y, w, h]. `vitpose eval` writes results without it, as the original does: with
                a `bbox`, pycocotools takes a prediction's area from its box rather than from its keypoints.
            decimals: round `keypoints` and `bbox` to this many decimals (3: 0.001 px); None keeps the full
                float32 values (the evaluation's results).

        A value that is not finite (NaN or inf: a model whose weights or input overflowed) is None, JSON's null,
        so that the JSON written stays valid (`json.dumps(..., allow_nan=False)` accepts it); no box can make one,
        since the estimator refuses or skips boxes that would (`vitpose.detectors.boxes.usable_boxes`).
        """
        image_id = self.image_id if image_id is None else image_id
        if image_id is None:
            raise VitPoseError("to_coco needs an image_id: pass to_coco(image_id=...) or set result.image_id")
        if not isinstance(image_id, str):
            image_id = int(image_id)
        categories = np.broadcast_to(np.asarray(category_id), (len(self),))
        flat = np.concatenate([self.keypoints, self.keypoint_scores[..., None]], axis=2)
        flat = flat.reshape(len(self), 3 * self.num_keypoints)

        def values(row: np.ndarray) -> list[float | None]:
            out = [float(v) for v in row] if decimals is None else [round(float(v), decimals) for v in row]
            return out if np.isfinite(row).all() else _finite_or_none(out)

        out = []
        for i in range(len(self)):
            entry: dict[str, Any] = {
                "image_id": image_id,
                "category_id": int(categories[i]),
                "keypoints": values(flat[i]),
                "score": _finite_or_none(float(self.scores[i])),
            }
            if bbox:
                entry["bbox"] = values(self.boxes[i])
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

    def people(
        self, track_ids: Sequence[int] | np.ndarray | None = None, decimals: tuple[int, int] | None = None
    ) -> list[dict[str, Any]]:
        """One `person_dict` per instance: the one JSON schema of a person (see `person_dict`)."""
        return [
            person_dict(
                self.boxes[i],
                self.box_scores[i],
                self.scores[i],
                self.keypoints[i],
                self.keypoint_scores[i],
                track_id=None if track_ids is None else track_ids[i],
                decimals=decimals,
            )
            for i in range(len(self))
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready lists: `file_name`, `image_id`, `image_size` [W, H], `dataset` (its name),
        `keypoint_names` and `instances`, one `person_dict` per instance (full float32 precision)."""
        return {
            "file_name": self.file_name,
            "image_id": self.image_id,
            "image_size": list(self.image_size),
            "dataset": self.dataset.name,
            "keypoint_names": list(self.dataset.keypoint_names),
            "instances": self.people(),
        }


def person_dict(
    bbox: Any,
    box_score: Any,
    score: Any,
    keypoints: Any,
    keypoint_scores: Any,
    *,
    track_id: int | None = None,
    decimals: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One person (or animal) as JSON: THE schema of a pose result, used by `PoseResult.to_dict` (`instances`),
    the video JSON Lines (`people` of each frame, with `track_id`) and every other JSON output of poses.

    Schema (keys in this order; plain numbers and lists)::

        {
          "track_id": 3,                                  (only for tracked poses: int >= 1, stable over frames)
          "bbox": [x, y, width, height],                  the box the pose was estimated in, image pixels (COCO)
          "box_score": 0.93,                              the detector's score (1 for given boxes)
          "score": 0.71,                                  instance score: box score x mean keypoint score > 0.2
          "keypoints": [[x, y], ...],                     K points in image pixels, in the data set's order
          "keypoint_scores": [0.9, ...]                   K heatmap maxima
        }

    The keypoint names and order are those of the data set (`PoseResult.dataset.keypoint_names`), given once per
    image (`to_dict`'s `keypoint_names`), not per person.

    Args:
        bbox: (4,); box_score, score: numbers; keypoints: (K, 2); keypoint_scores: (K,).
        track_id: the pose's track id, or None (no `track_id` key).
        decimals: None: full precision (float32 values as Python floats); (c, s): coordinates (`bbox`,
            `keypoints`) rounded to c decimals and scores to s (the video JSON Lines use (3, 5)).

    COCO keypoint results (`image_id`, `category_id`, flat `keypoints` x, y, score, ...) are another format, the
    one pycocotools reads: `PoseResult.to_coco`.

    A value that is not finite (NaN, inf) is written as None (JSON null), never as the invalid JSON `NaN`.
    """
    out: dict[str, Any] = {} if track_id is None else {"track_id": int(track_id)}
    box = np.asarray(bbox, np.float64)
    points = np.asarray(keypoints, np.float64)
    point_scores = np.asarray(keypoint_scores, np.float64)
    if decimals is None:
        out.update(
            bbox=box.tolist(),
            box_score=float(box_score),
            score=float(score),
            keypoints=points.tolist(),
            keypoint_scores=point_scores.tolist(),
        )
    else:
        coords, scores = decimals
        out.update(
            bbox=np.round(box, coords).tolist(),
            box_score=round(float(box_score), scores),
            score=round(float(score), scores),
            keypoints=np.round(points, coords).tolist(),
            keypoint_scores=np.round(point_scores, scores).tolist(),
        )
    finite = all(np.isfinite(v).all() for v in (box, points, point_scores, box_score, score))
    return out if finite else {key: _finite_or_none(value) for key, value in out.items()}


def _finite_or_none(value: Any) -> Any:
    """`value` (a number or nested lists of numbers) with every NaN and inf replaced by None (JSON null)."""
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@renamed_kwargs(threshold="rescore_thr")
def instance_scores(box_scores: np.ndarray, keypoint_scores: np.ndarray, rescore_thr: float = 0.2) -> np.ndarray:
    """The original's rescoring: box score x mean of the keypoint scores above `rescore_thr` (0 when none is).

    box_scores (N,), keypoint_scores (N, K) -> (N,) float32.
    """
    # In float64 as the original (a float32 score compared with the Python float 0.2): 0.2 in float32 is above 0.2.
    above = np.asarray(keypoint_scores, dtype=np.float64) > rescore_thr
    count = above.sum(axis=1)
    mean = np.where(count > 0, (keypoint_scores * above).sum(axis=1) / np.maximum(count, 1), 0.0)
    return (box_scores * mean).astype(np.float32)
