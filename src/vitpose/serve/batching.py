"""Micro-batching: one worker thread owns the pose network; the person crops of concurrent requests share its batches.

A request's thread does everything else `PoseEstimator.predict` does (read the image, find or take the boxes,
crop, decode the heatmaps, rescore, NMS), unchanged: the estimator it runs is the service's one with its model
replaced by a `BatchedModel`, a `PoseModel` whose call puts the crops (pixel_values, already cropped by the
processor) on the worker's queue and waits for their heatmaps. The worker takes up to `max_batch` crops of calls
with the same network arguments (data set, flip test), waiting at most `max_wait_ms` for more, runs the network
once, and hands each call its own rows. Each crop's heatmaps are a function of that crop only, so a request gets
the keypoints `PoseEstimator.predict` gives for the same image and boxes (to float rounding, 1e-5), whatever
shares its batch.

The queue is bounded by `queue_size` admitted requests (`MicroBatcher.admit`): one more is refused at once with
`QueueFull` (the service answers 503 with Retry-After), so load never grows memory without bound.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from vitpose.errors import VitPoseError


class QueueFull(VitPoseError):
    """The service has `queue_size` requests in progress: this one is refused (503, try again later)."""


class RequestTimeout(VitPoseError):
    """A request waited longer than its time limit for the network (504)."""


@dataclass
class _Job:
    pixel_values: torch.Tensor
    key: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """The worker thread that runs `model` on the crops of every request, `max_batch` crops at most per call.

    Counters (read them, do not write): `model_calls`, `crops` (crops run), `batch_sizes` (the last 1000 batch
    sizes), `submitted` (calls queued), `pending` (requests admitted and not finished).
    """

    def __init__(self, model: Any, *, max_batch: int = 16, max_wait_ms: float = 5.0, queue_size: int = 64) -> None:
        if max_batch < 1 or queue_size < 1 or max_wait_ms < 0:
            raise VitPoseError(
                f"max_batch and queue_size must be >= 1 and max_wait_ms >= 0, got {max_batch}, {queue_size}, "
                f"{max_wait_ms}"
            )
        self.model = model
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.queue_size = int(queue_size)
        self.model_calls = 0
        self.crops = 0
        self.batch_sizes: list[int] = []
        self.pending = 0
        self.submitted = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        # Bounded by admission (each admitted request has at most one call waiting), not by the queue itself.
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._held: _Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="vitpose-serve-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ request side
    @contextmanager
    def admit(self, timeout_s: float) -> Iterator[None]:
        """Hold one of the `queue_size` places for a request, with `timeout_s` to get its heatmaps; `QueueFull`
        at once when none is free."""
        with self._lock:
            if self._closed:
                raise QueueFull("the service is shutting down")
            if self.pending >= self.queue_size:
                raise QueueFull(
                    f"the service is busy: {self.pending} requests in progress (queue size "
                    f"{self.queue_size}); try again shortly"
                )
            self.pending += 1
        self._local.deadline = time.monotonic() + timeout_s
        try:
            yield
        finally:
            self._local.deadline = None
            with self._lock:
                self.pending -= 1

    @property
    def full(self) -> bool:
        return self.pending >= self.queue_size

    def run(self, pixel_values: torch.Tensor, **kwargs: Any) -> Any:
        """The model's output for `pixel_values`, computed by the worker (maybe with other requests' crops)."""
        pairs = kwargs.get("flip_pairs")
        index = kwargs.get("dataset_index")
        if isinstance(index, torch.Tensor | np.ndarray):
            raise VitPoseError("the batched model takes one dataset_index per call")
        key = (index, bool(kwargs.get("flip_test", False)), None if pairs is None else np.asarray(pairs).tobytes())
        job = _Job(pixel_values, key, kwargs)
        with self._lock:
            self.submitted += 1
        self._jobs.put(job)
        deadline = getattr(self._local, "deadline", None)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return job.future.result(timeout=timeout)
        except FutureTimeout:
            job.future.cancel()  # still queued: the worker drops it
            raise RequestTimeout("the request took longer than its time limit") from None

    def close(self) -> None:
        """Stop the worker once the calls already queued are done."""
        with self._lock:
            self._closed = True
        self._jobs.put(None)
        self._thread.join(timeout=30)

    # ------------------------------------------------------------------ worker
    def _next(self, timeout: float | None) -> _Job | None:
        if self._held is not None:
            job, self._held = self._held, None
            return job
        return self._jobs.get(timeout=timeout) if timeout is None or timeout > 0 else self._jobs.get_nowait()

    def _run(self) -> None:
        while True:
            job = self._next(None)
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            batch, count = [job], len(job.pixel_values)
            deadline = time.monotonic() + self.max_wait_s
            stop = False
            while count < self.max_batch:
                try:
                    more = self._next(deadline - time.monotonic())
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                if more.key != job.key or count + len(more.pixel_values) > self.max_batch:
                    self._held = more  # the first of the next batch
                    break
                if more.future.set_running_or_notify_cancel():
                    batch.append(more)
                    count += len(more.pixel_values)
            self._compute(batch, count)
            if stop:
                self._drain()
                return

    def _drain(self) -> None:
        while True:
            try:
                job = self._next(0)
            except queue.Empty:
                return
            if job is not None and job.future.set_running_or_notify_cancel():
                self._compute([job], len(job.pixel_values))

    def _compute(self, batch: list[_Job], count: int) -> None:
        try:
            pixel_values = batch[0].pixel_values if len(batch) == 1 else torch.cat([j.pixel_values for j in batch])
            with torch.inference_mode():
                heatmaps = self.model(pixel_values, **batch[0].kwargs).heatmaps
            self.model_calls += 1
            self.crops += count
            self.batch_sizes = [*self.batch_sizes[-999:], count]
            start = 0
            for j in batch:
                n = len(j.pixel_values)
                j.future.set_result(SimpleNamespace(heatmaps=heatmaps[start : start + n]))
                start += n
        except BaseException as err:  # the requests of this batch fail; the worker goes on
            for j in batch:
                if not j.future.done():
                    j.future.set_exception(err)


class BatchedModel:
    """A `PoseModel` for `PoseEstimator` whose calls run on a `MicroBatcher`'s worker."""

    def __init__(self, model: Any, batcher: MicroBatcher) -> None:
        self.config = model.config
        self._model = model
        self.batcher = batcher

    @property
    def device(self) -> torch.device:
        return self._model.device

    @property
    def dtype(self) -> torch.dtype:
        return self._model.dtype

    @property
    def is_moe(self) -> bool:
        return self._model.is_moe

    def eval(self) -> BatchedModel:
        return self

    def __call__(self, pixel_values: torch.Tensor, **kwargs: Any) -> Any:
        return self.batcher.run(pixel_values, **kwargs)


__all__ = ["BatchedModel", "MicroBatcher", "QueueFull", "RequestTimeout"]
