"""Ray Data stages for pose estimation over many images (optional extra `vitpose[ray]`).

Two callable classes for `ray.data.Dataset.map_batches` with an actor pool, each loading its model once per actor,
so that detection and pose can be sized apart (a GPU detector and CPU pose, or the reverse):

    DetectStage(detector="auto", det_thr=0.3, animals=False)   "path" -> "detections" (JSON: boxes, scores, labels)
    PoseStage(model, flip_test=False, dataset=None, ...)       "path", "detections" -> "predictions" (JSON)

Rows carry the image's `path` (and optionally `image_id`); each stage adds its column and an `error` column: the
reason an image could not be read, never a dropped row. "predictions" is the JSON list of the image's COCO results
(`PoseResult.to_coco`), the entries `vitpose predict` writes to predictions.json. The pose stage runs the same
`PoseEstimator` as the local path, with the detection stage's boxes given back as its detector's, so rescoring and
OKS-NMS are those of the local path and the keypoints are the same.

`predict_dataset(paths, model, ...)` builds the two stages over a list of paths and returns the `ray.data.Dataset`
(lazy: nothing runs until it is consumed).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from vitpose.detectors.base import Detections
from vitpose.errors import ImageReadError, MissingDependencyError
from vitpose.media import FailedImage, load_image
from vitpose.outputs import json_text

__all__ = ["DetectStage", "PoseStage", "predict_dataset", "require_ray"]


def require_ray() -> Any:
    """`ray.data`, or a `MissingDependencyError` naming the extra to install."""
    try:
        import ray.data
    except ImportError:
        raise MissingDependencyError('the Ray engine needs Ray Data: pip install "vitpose[ray]"') from None
    return ray.data


def _detections_json(found: Detections) -> str:
    return json_text({"boxes": found.boxes.tolist(), "scores": found.scores.tolist(), "labels": found.labels.tolist()})


def _detections(text: str) -> Detections:
    value = json.loads(text)
    return Detections(
        np.asarray(value["boxes"], np.float32).reshape(-1, 4),
        np.asarray(value["scores"], np.float32),
        np.asarray(value["labels"], np.int64),
    )


def _column(batch: dict[str, Any], name: str, n: int) -> list[Any]:
    values = batch.get(name)
    return [None] * n if values is None else list(values)


class DetectStage:
    """`map_batches` stage: the person boxes of each row's image (`detections`, JSON), or its `error`.

    Args:
        detector: a detector name ("auto", "rtdetr", "hog", "full-image", as `vitpose predict --detector`).
        det_thr: the detector's score threshold.
        device: where the detector runs ("auto", "cpu", "cuda", ...).
        animals: the animal detector (AP-10K / APT-36K models).
    """

    def __init__(
        self, detector: str = "auto", *, det_thr: float = 0.3, device: str = "auto", animals: bool = False
    ) -> None:
        from vitpose.detectors import build_detector
        from vitpose.device import resolve_device

        self.detector = build_detector(detector, device=resolve_device(device), det_thr=det_thr, animals=animals)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        paths = [str(p) for p in batch["path"]]
        errors = _column(batch, "error", len(paths))
        found: list[str | None] = [None] * len(paths)
        for i, path in enumerate(paths):
            if errors[i]:
                continue
            try:
                rgb = load_image(path)[0]
            except ImageReadError as err:
                errors[i] = err.reason  # reported in the row, never dropped
                continue
            found[i] = _detections_json(self.detector([rgb], [path])[0])
        return {**batch, "detections": np.array(found, dtype=object), "error": np.array(errors, dtype=object)}


class _GivenDetections:
    """A person detector that answers with the detections a `DetectStage` found for each image (by path)."""

    def __init__(self) -> None:
        self.by_path: dict[str, Detections] = {}

    def __call__(self, images: Sequence[np.ndarray], names: Sequence[str | None] | None) -> list[Detections]:
        return [self.by_path[str(name)] for name in (names or [None] * len(images))]


class PoseStage:
    """`map_batches` stage: the poses of each row's image (`predictions`, JSON: its COCO results), or its `error`.

    Args:
        model: checkpoint (hub id, hub-format directory or original `.pth`).
        device, flip_test, dataset, batch_size, nms_thr, rescore_thr: as `PoseEstimator.from_pretrained`.
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        flip_test: bool = False,
        dataset: Any = None,
        batch_size: int = 32,
        nms_thr: float | None = 0.9,
    ) -> None:
        from vitpose.inference.estimator import PoseEstimator

        self.given = _GivenDetections()
        self.estimator = PoseEstimator.from_pretrained(
            model,
            device=device,
            flip_test=flip_test,
            dataset=dataset,
            batch_size=batch_size,
            nms_thr=nms_thr,
            detector=self.given,
        )

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        paths = [str(p) for p in batch["path"]]
        n = len(paths)
        errors = _column(batch, "error", n)
        image_ids = _column(batch, "image_id", n)
        detections = _column(batch, "detections", n)
        todo = [i for i in range(n) if not errors[i]]
        self.given.by_path = {paths[i]: _detections(detections[i]) for i in todo}
        predictions: list[str | None] = [None] * n
        results = self.estimator.iter_predict([paths[i] for i in todo], errors="report")
        for i, result in zip(todo, results, strict=True):
            if isinstance(result, FailedImage):
                errors[i] = result.reason
                continue
            image_id = int(image_ids[i]) if image_ids[i] is not None else 0  # the row's COCO image id, if any
            predictions[i] = json_text(result.to_coco(image_id=image_id))
        self.given.by_path = {}
        return {**batch, "predictions": np.array(predictions, dtype=object), "error": np.array(errors, dtype=object)}


def predict_dataset(
    paths: Sequence[str],
    model: str,
    *,
    detector: str = "auto",
    det_thr: float = 0.3,
    flip_test: bool = False,
    dataset: Any = None,
    batch_size: int = 32,
    nms_thr: float | None = 0.9,
    detect_actors: int = 1,
    pose_actors: int = 1,
    detect_cpus: float = 0.5,
    pose_cpus: float = 0.5,
    pose_gpus: float = 0,
    images_per_batch: int = 8,
    image_ids: Sequence[int] | None = None,
) -> Any:
    """A `ray.data.Dataset` of one row per path: `path`, `image_id`, `detections`, `predictions`, `error`.

    `image_ids`: the COCO image id of each path (default: its position + 1, as `vitpose predict`). Actors:
    `detect_actors` / `pose_actors` with `detect_cpus` / `pose_cpus` (and `pose_gpus`) each; fractions leave CPUs
    to Ray's reading tasks (whole CPUs for every actor on a small machine can starve them and hang the job).
    """
    data = require_ray()
    ids = list(image_ids) if image_ids is not None else list(range(1, len(paths) + 1))
    rows = [{"path": str(p), "image_id": int(i), "error": ""} for p, i in zip(paths, ids, strict=True)]
    from vitpose.datasets import DatasetInfo, get_dataset_info, parse_dataset

    info = None if dataset is None else parse_dataset(dataset)  # a name, an index or a custom data set file
    animals = info is not None and (info if isinstance(info, DatasetInfo) else get_dataset_info(info)).is_animal
    found = data.from_items(rows).map_batches(
        DetectStage,
        fn_constructor_kwargs={"detector": detector, "det_thr": det_thr, "device": "cpu", "animals": animals},
        batch_size=images_per_batch,
        compute=data.ActorPoolStrategy(size=detect_actors),
        num_cpus=detect_cpus,
    )
    return found.map_batches(
        PoseStage,
        fn_constructor_kwargs={
            "model": str(model),
            "device": "cuda" if pose_gpus else "cpu",
            "flip_test": flip_test,
            "dataset": dataset,
            "batch_size": batch_size,
            "nms_thr": nms_thr,
        },
        batch_size=images_per_batch,
        compute=data.ActorPoolStrategy(size=pose_actors),
        num_cpus=pose_cpus,
        num_gpus=pose_gpus,
    )
