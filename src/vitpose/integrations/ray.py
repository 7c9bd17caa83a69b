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
import os
import shutil
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from vitpose.detectors.base import Detections
from vitpose.errors import ImageReadError, MissingDependencyError
from vitpose.media import FailedImage
from vitpose.outputs import json_text

__all__ = ["LOCAL_RAY_ENV", "DetectStage", "PoseStage", "RayRunner", "predict_dataset", "ray_session", "require_ray"]

LOCAL_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Ray's settings for a local Ray on one machine, read when `ray` is first imported: no usage report sent, no
`~/.ray/auth_token` written, and the cluster kept on the loopback interface (with `_node_ip_address="127.0.0.1"`;
without the last one Ray listens on every interface and talks over the machine's network address)."""
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def require_ray(address: str | None = None) -> Any:
    """`ray.data`, or a `MissingDependencyError` naming the extra to install.

    Before Ray's first import in the process, its settings are put in the environment (where not set already):
    for a local Ray (`address` None) or a cluster on this machine's loopback interface (`127.0.0.1:PORT`,
    `localhost:PORT`: without them Ray swaps 127.0.0.1 for the machine's network address and waits forever for a
    head that is not there) those of `LOCAL_RAY_ENV`, and Ray Data's log level ERROR (not a few lines on
    stderr per dataset; `RAY_DATA_LOG_LEVEL=INFO` shows them). Call it with the address before anything imports
    ray."""
    import sys
    import warnings

    if "ray" not in sys.modules:
        for name, value in (LOCAL_RAY_ENV if is_local_address(address) else {}).items():
            os.environ.setdefault(name, value)
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Ray's own settings' renames, not the user's
            import ray.data
    except ImportError:
        raise MissingDependencyError('the Ray engine needs Ray Data: pip install "vitpose[ray]"') from None
    return ray.data


def is_local_address(address: str | None) -> bool:
    """None (a local Ray to start) or the address of a cluster on the loopback interface."""
    if address is None:
        return True
    host = address.split("://")[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "[::1]")


@contextmanager
def ray_session(
    address: str | None = None,
    *,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    object_store_mb: int | None = None,
) -> Iterator[Any]:
    """A connection to Ray for the duration of a job: the `ray` module.

    `address`: an existing cluster ("auto": the one this machine has joined with `ray start`; "HOST:PORT" of its head;
    "ray://HOST:10001" through Ray Client). None starts a local Ray on this machine, bound to 127.0.0.1 only (see
    `LOCAL_RAY_ENV`, applied when this is the first import of `ray` in the process), with `num_cpus` / `num_gpus`
    (default: the machine's) and `object_store_mb` of shared memory (default: Ray's), shut down at the end; a Ray the
    caller already started is used as it is and left running. Ray's progress bars and the workers' log lines are
    off (every failure comes back in the results); Ray Data's own deprecation warnings are not shown. The
    process's SIGTERM / SIGINT handlers, which `ray.init` replaces, are put back at once and after the shutdown.
    """
    require_ray(address)
    import logging
    import warnings

    import ray

    if ray.is_initialized():
        yield ray
        return
    handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    temp = None
    try:
        if address is None:
            temp = f"/tmp/vitpose-ray-{os.getpid()}"  # short: Ray's Unix socket paths must stay under 107 bytes
            ray.init(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                object_store_memory=None if object_store_mb is None else int(object_store_mb * 1024 * 1024),
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                _temp_dir=temp,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        _restore(handlers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # made on first use, it warns about its own renames
            ray.data.DataContext.get_current().enable_progress_bars = False
        yield ray
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _restore(handlers)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _restore(handlers: dict[Any, Any]) -> None:
    for sig, handler in handlers.items():
        if handler is not None:
            signal.signal(sig, handler)


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


def _read_images(paths: Sequence[str], errors: list[Any], skip: Sequence[bool] = ()) -> dict[int, np.ndarray]:
    """Row index -> RGB image, for the rows without an error (nor `skip`); a row whose image cannot be read gets the
    reason in `errors` (reported in the row, never dropped)."""
    from vitpose.integrations.sources import read_image

    images: dict[int, np.ndarray] = {}
    for i, path in enumerate(paths):
        if errors[i] or (skip and skip[i]):
            continue
        try:
            images[i] = read_image(path)
        except ImageReadError as err:
            errors[i] = err.reason or str(err)
    return images


def _placed(estimator: Any, device: str, dtype: Any = None) -> Any:
    """A `PoseEstimator` given directly or as a Ray object reference, its model moved to `device` and cast to
    `dtype` resolved there (`vitpose.device.resolve_dtype`: "auto" is float16 on a GPU actor, float32 on a CPU one,
    whatever the driver loaded it in); None keeps the dtype it came in."""
    import ray

    from vitpose.device import resolve_device, resolve_dtype

    if isinstance(estimator, ray.ObjectRef):
        estimator = ray.get(estimator)
    place = resolve_device(device)
    estimator.model.to(place, None if dtype is None else resolve_dtype(dtype, place))
    return estimator


class DetectStage:
    """`map_batches` stage: the person boxes of each row's image (`detections`, JSON), or its `error`.

    Rows whose `detections` are already filled (boxes given by a file) or that carry an `error` pass through.

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
        found = _column(batch, "detections", len(paths))
        given = [isinstance(value, str) and bool(value) for value in found]
        for i, rgb in _read_images(paths, errors, skip=given).items():
            found[i] = _detections_json(self.detector([rgb], [paths[i]])[0])
        return {**batch, "detections": np.array(found, dtype=object), "error": np.array(errors, dtype=object)}


class _GivenDetections:
    """A person detector that answers, call after call, with the detections found for the images in turn."""

    def __init__(self) -> None:
        self.queue: list[Detections] = []

    def __call__(self, images: Sequence[np.ndarray], names: Sequence[str | None] | None) -> list[Detections]:
        answer, self.queue = self.queue[: len(images)], self.queue[len(images) :]
        return answer


class PoseStage:
    """`map_batches` stage: the poses of each row's image (`predictions`, JSON: its COCO results, as the entries of
    `vitpose predict`'s predictions.json), or its `error`.

    The pose estimation is that of the local path: a `PoseEstimator` whose detector answers with the row's
    `detections`, so boxes outside the image are skipped, instances rescored and OKS-NMS applied as locally.

    Args:
        model: a checkpoint (hub id, hub-format directory or original `.pth`: each actor loads it, so a local
            folder must be readable on every node), or a `PoseEstimator` (or a Ray object reference to one, from
            `ray.put`: the weights travel through Ray's object store, no shared file system needed), whose settings
            are then used as they are.
        device: where the network runs ("auto", "cpu", "cuda", ...).
        dtype: its precision there ("auto", "float32", "float16", "bfloat16": `vitpose.device.resolve_dtype` on
            `device`); None: a checkpoint in float32, an estimator as it came.
        flip_test, dataset, batch_size, nms_thr: as `PoseEstimator.from_pretrained` (for a checkpoint).
    """

    def __init__(
        self,
        model: Any,
        *,
        device: str = "auto",
        dtype: Any = None,
        flip_test: bool = False,
        dataset: Any = None,
        batch_size: int = 32,
        nms_thr: float | None = 0.9,
    ) -> None:
        from vitpose.inference.estimator import PoseEstimator

        self.given = _GivenDetections()
        if isinstance(model, str | os.PathLike):
            settings = {"flip_test": flip_test, "dataset": dataset, "batch_size": batch_size, "nms_thr": nms_thr}
            estimator = PoseEstimator.from_pretrained(model, device=device, dtype=dtype, **settings)
        else:
            estimator = _placed(model, device, dtype)
        self.estimator = estimator.with_detector(self.given)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        paths = [str(p) for p in batch["path"]]
        n = len(paths)
        errors = _column(batch, "error", n)
        image_ids = _column(batch, "image_id", n)
        detections = _column(batch, "detections", n)
        images = _read_images(paths, errors)
        todo = sorted(images)
        self.given.queue = [_detections(detections[i]) for i in todo]
        predictions: list[str | None] = [None] * n
        results = self.estimator.iter_predict([images.pop(i) for i in todo], errors="report")
        for i, result in zip(todo, results, strict=True):
            if isinstance(result, FailedImage):
                errors[i] = result.reason
                continue
            result.file_name = paths[i]  # as the local path names its results: the path given
            image_id = _image_id(image_ids[i], 0)
            predictions[i] = json_text(result.to_coco(image_id=image_id))
        return {**batch, "predictions": np.array(predictions, dtype=object), "error": np.array(errors, dtype=object)}


def _blocks(rows: int, per_batch: int) -> int:
    """Input blocks of one batch each: an actor pool hands whole blocks to its actors, so one block of every row (what
    `from_items` makes of a short list) would keep all the work on one actor."""
    return max(1, -(-rows // per_batch))


def _image_id(value: Any, default: Any) -> Any:
    """A row's COCO image id: an integer, or a string as COCO files may have (kept as it is)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    return value if isinstance(value, str) else int(value)


def predict_dataset(
    paths: Sequence[Any],
    model: Any,
    *,
    detector: str = "auto",
    det_thr: float = 0.3,
    flip_test: bool = False,
    dataset: Any = None,
    batch_size: int = 32,
    nms_thr: float | None = 0.9,
    dtype: Any = None,
    detect_actors: int = 1,
    pose_actors: int = 1,
    detect_cpus: float = 0.5,
    detect_gpus: float = 0,
    pose_cpus: float = 0.5,
    pose_gpus: float = 0,
    images_per_batch: int = 8,
    image_ids: Sequence[Any] | None = None,
    detections: Sequence[Detections | None] | None = None,
    positions: Sequence[int] | None = None,
) -> Any:
    """A `ray.data.Dataset` of one row per path: `path`, `image_id`, `position`, `detections`, `predictions`,
    `error` (lazy: nothing runs until it is consumed; rows come back in no particular order).

    Args:
        paths: image paths (local, or URIs that pyarrow's file systems read), or `sources.ImageRef`s (their
            `image_id` is used where set).
        model: a checkpoint name, or a loaded `PoseEstimator` (shipped to the actors through Ray's object store,
            with its settings; `flip_test`, `dataset`, `batch_size` and `nms_thr` then do not apply).
        detector, det_thr: the detection stage's detector (as `vitpose predict --detector`).
        dtype: the pose network's precision on each pose actor, resolved on its device (`PoseStage`): "auto" is
            float16 on GPU actors, float32 on CPU ones; None: float32 for a checkpoint, a loaded estimator as it is.
        image_ids: the COCO image id of each path (default: its position + 1, as `vitpose predict`).
        detections: the person boxes of each image, given (a boxes file): no detection stage runs; None for an
            image means "detect it".
        positions: each path's position in the whole job (default 0, 1, ...), kept in the rows.
        detect_actors / pose_actors: the actor pools' sizes, with `detect_cpus` / `detect_gpus` and `pose_cpus` /
            `pose_gpus` per actor; fractions leave CPUs to Ray's reading tasks (whole CPUs for every actor on a
            small machine can starve them and hang the job).
        images_per_batch: rows per `map_batches` call.
    """
    data = require_ray()
    from vitpose.inference.estimator import PoseEstimator
    from vitpose.integrations.sources import ImageRef

    refs = [p if isinstance(p, ImageRef) else ImageRef(str(p)) for p in paths]
    where = list(positions) if positions is not None else list(range(len(refs)))
    ids = (
        list(image_ids)
        if image_ids is not None
        else [r.image_id if r.image_id is not None else p + 1 for r, p in zip(refs, where, strict=True)]
    )
    given = list(detections) if detections is not None else [None] * len(refs)
    rows = [
        {
            "path": ref.path,
            "image_id": image_id,
            "position": int(position),
            "detections": "" if found is None else _detections_json(found),  # "": to detect (a string column)
            "error": "",
        }
        for ref, image_id, position, found in zip(refs, ids, where, given, strict=True)
    ]
    if isinstance(model, PoseEstimator):
        import ray

        animals = model.dataset.is_animal
        model = ray.put(model)
    elif isinstance(model, str | os.PathLike):
        from vitpose.datasets import DatasetInfo, get_dataset_info, parse_dataset

        model = str(model)
        info = None if dataset is None else parse_dataset(dataset)  # a name, an index or a custom data set file
        animals = info is not None and (info if isinstance(info, DatasetInfo) else get_dataset_info(info)).is_animal
    else:  # a reference to an estimator put by the caller
        animals = False
    found = data.from_items(rows, override_num_blocks=_blocks(len(rows), images_per_batch))
    if any(d is None for d in given):
        found = found.map_batches(
            DetectStage,
            fn_constructor_kwargs={
                "detector": detector,
                "det_thr": det_thr,
                "device": "cuda" if detect_gpus else "cpu",
                "animals": animals,
            },
            batch_size=images_per_batch,
            compute=data.ActorPoolStrategy(size=detect_actors),
            num_cpus=detect_cpus,
            num_gpus=detect_gpus,
        )
    return found.map_batches(
        PoseStage,
        fn_constructor_kwargs={
            "model": model,
            "device": "cuda" if pose_gpus else "cpu",
            "dtype": dtype,
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


class _GivenBoxesStage:
    """`map_batches` stage of `RayRunner`: each row's image with its given boxes (or regions) through the
    estimator, the result (`PoseResult` or `FailedImage`) pickled into `result`."""

    def __init__(self, estimator: Any, device: str = "cpu", dtype: Any = None) -> None:
        self.estimator = _placed(estimator, device, dtype)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import pickle

        paths = [str(p) for p in batch["path"]]
        given = [pickle.loads(g) for g in batch["given"]]
        errors: list[Any] = [None] * len(paths)
        read = _read_images(paths, errors)
        out: list[Any] = [None if errors[i] is None else FailedImage(path, errors[i]) for i, path in enumerate(paths)]
        kept = sorted(read)
        if kept:
            keys = given[kept[0]].keys()
            options = {key: [given[i][key] for i in kept] for key in keys}
            images = [read[i] for i in kept]
            for i, result in zip(kept, self.estimator.iter_predict(images, errors="report", **options), strict=True):
                if isinstance(result, FailedImage):
                    result.source = paths[i]
                else:
                    result.file_name = paths[i]
                out[i] = result
        return {"index": batch["index"], "result": np.array([pickle.dumps(r) for r in out], dtype=object)}


class RayRunner:
    """Runs a `PoseEstimator` over images with given boxes on Ray actors: the `runner` of
    `vitpose.evaluation.evaluate` (`vitpose eval --engine ray`).

    Called as `runner(estimator, images, boxes=..., box_scores=...)` (or `regions=...`), it ships the estimator to
    `actors` actors (`num_cpus` / `num_gpus` each) through Ray's object store and yields, in input order, what
    `estimator.iter_predict(images, errors="report", ...)` yields locally. `dtype`: the network's precision on each
    actor, resolved on its device ("auto": float16 on GPU actors, float32 on CPU ones); None keeps the estimator's.
    Needs a Ray session (`ray_session`).
    """

    def __init__(
        self,
        actors: int = 1,
        *,
        num_cpus: float = 0.5,
        num_gpus: float = 0,
        images_per_batch: int = 8,
        dtype: Any = None,
    ) -> None:
        self.actors = actors
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.dtype = dtype
        self.images_per_batch = images_per_batch

    def __call__(self, estimator: Any, images: Sequence[Any], **given: Any) -> Iterator[Any]:
        import pickle

        data = require_ray()
        import ray

        if not images:
            return
        names = [name for name, values in given.items() if values is not None]
        rows = [
            {"index": i, "path": str(path), "given": pickle.dumps({name: given[name][i] for name in names})}
            for i, path in enumerate(images)
        ]
        ref = ray.put(estimator.with_detector("full-image"))  # no detector travels: the boxes are given
        results = data.from_items(rows, override_num_blocks=_blocks(len(rows), self.images_per_batch)).map_batches(
            _GivenBoxesStage,
            fn_constructor_kwargs={
                "estimator": ref,
                "device": "cuda" if self.num_gpus else "cpu",
                "dtype": self.dtype,
            },
            batch_size=self.images_per_batch,
            compute=data.ActorPoolStrategy(size=self.actors),
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
        )
        waiting: dict[int, Any] = {}
        following = 0
        for row in results.iter_rows():  # in no particular order: put back in input order
            waiting[int(row["index"])] = pickle.loads(row["result"])
            while following in waiting:
                yield waiting.pop(following)
                following += 1
