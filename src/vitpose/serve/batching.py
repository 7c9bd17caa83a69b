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
`QueueFull` (the service answers 503 with Retry-After), so load never grows memory without bound. The worker waits
for more crops only while admitted requests have yet to give theirs (a lone request runs at once), and at most
`max_wait_ms`. Each admitted request holds a `Ticket`: its deadline (`RequestTimeout`), and `cancel()` for a client
that went away, which drops its queued crops before they reach the network (`RequestCancelled`).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
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
    """A request took longer than its time limit (504)."""


class RequestCancelled(VitPoseError):
    """The request's client went away: its work was dropped."""


@dataclass(eq=False)  # compared by identity (the queue removes a cancelled one)
class _Job:
    pixel_values: torch.Tensor
    key: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: Future = field(default_factory=Future)


class Ticket:
    """One request: its deadline (`timeout_s` from now; None: none) and whether its client went away."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.cancelled = False
        self.admitted = False  # holds one of the batcher's queue_size places
        self._job: _Job | None = None
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """The client went away: drop the request's crops if still queued, and stop it at its next step."""
        with self._lock:
            self.cancelled = True
            job = self._job
        if job is not None:
            job.future.cancel()  # fails (harmlessly) once the worker has taken it

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check(self) -> None:
        """`RequestCancelled` or `RequestTimeout` if the request should stop now."""
        if self.cancelled:
            raise RequestCancelled("the client went away")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise RequestTimeout("the request took longer than its time limit")

    def _hold(self, job: _Job | None) -> None:
        with self._lock:
            self._job = job
            cancelled = self.cancelled
        if cancelled and job is not None:
            job.future.cancel()


class MicroBatcher:
    """The worker thread that runs `model` on the crops of every request, `max_batch` crops at most per call.

    Counters (read them, do not write): `model_calls`, `crops` (crops run), `batch_sizes` (the last 1000 batch
    sizes), `submitted` (calls queued), `dropped` (calls dropped unrun: client gone or time out), `pending`
    (requests admitted and not finished). `on_batch(crops, seconds)`, when set, is called after each network call.
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
        self.dropped = 0
        self.on_batch: Callable[[int, float], None] | None = None
        self._cond = threading.Condition()
        # The ticket of the request being served, as a context variable: it follows the request into the threads
        # of the estimator's stages (`vitpose.parallel` runs them in a copy of the caller's context).
        self._ticket: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
            f"vitpose-ticket-{id(self)}", default=None
        )
        # Bounded by admission (each admitted request has at most one call waiting), not by the queue itself.
        self._queue: deque[_Job] = deque()
        self._closed = True
        self._thread: threading.Thread | None = None
        self.open()

    def open(self) -> None:
        """Start the worker (done at construction; again after `close`, for a service started anew)."""
        with self._cond:
            if not self._closed:
                return
            previous = self._thread
        if previous is not None:  # outside the lock: the closing worker needs it to finish its queue
            previous.join(timeout=30)
        with self._cond:
            if not self._closed:
                return  # another call opened it meanwhile
            self._closed = False
            self._thread = threading.Thread(target=self._run, name="vitpose-serve-worker", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ request side
    def reserve(self, ticket: Ticket) -> None:
        """Take one of the `queue_size` places for `ticket`'s request; `QueueFull` at once when none is free or the
        service is closing. The service reserves before reading the upload, so a refusal costs nothing."""
        with self._cond:
            if self._closed:
                raise QueueFull("the service is shutting down")
            if self.pending >= self.queue_size:
                raise QueueFull(
                    f"the service is busy: {self.pending} requests in progress (queue size "
                    f"{self.queue_size}); try again shortly"
                )
            self.pending += 1
            ticket.admitted = True

    def release(self, ticket: Ticket) -> None:
        """Give back `ticket`'s place (once; again is a no-op)."""
        with self._cond:
            if not ticket.admitted:
                return
            ticket.admitted = False
            self.pending -= 1
            self._cond.notify_all()  # the worker need not wait for this request's crops any more

    @contextmanager
    def serving(self, ticket: Ticket) -> Iterator[Ticket]:
        """This thread works for `ticket`'s request in the block: its calls carry the ticket's deadline and
        cancellation."""
        token = self._ticket.set(ticket)
        try:
            yield ticket
        finally:
            self._ticket.reset(token)

    @contextmanager
    def admit(self, ticket: Ticket | None = None) -> Iterator[Ticket]:
        """`reserve` a place, serve the request in this thread in the block, then `release` it."""
        ticket = ticket or Ticket()
        self.reserve(ticket)
        try:
            with self.serving(ticket):
                yield ticket
        finally:
            self.release(ticket)

    @property
    def ticket(self) -> Ticket | None:
        """The ticket of the request this thread is serving (None outside `admit`), also on the threads of the
        estimator's stages working for it."""
        return self._ticket.get()

    @property
    def full(self) -> bool:
        return self.pending >= self.queue_size

    @property
    def queued(self) -> int:
        """Calls waiting for the worker."""
        return len(self._queue)

    def run(self, pixel_values: torch.Tensor, **kwargs: Any) -> Any:
        """The model's output for `pixel_values`, computed by the worker (maybe with other requests' crops)."""
        pairs = kwargs.get("flip_pairs")
        index = kwargs.get("dataset_index")
        if isinstance(index, torch.Tensor | np.ndarray):
            raise VitPoseError("the batched model takes one dataset_index per call")
        ticket = self.ticket
        if ticket is not None:
            ticket.check()
        key = (index, bool(kwargs.get("flip_test", False)), None if pairs is None else np.asarray(pairs).tobytes())
        job = _Job(pixel_values, key, kwargs)
        with self._cond:
            if self._closed:
                raise QueueFull("the service is shutting down")
            self.submitted += 1
            self._queue.append(job)
            self._cond.notify_all()
        if ticket is None:
            return job.future.result()
        ticket._hold(job)
        try:
            return job.future.result(timeout=ticket.remaining())
        except CancelledError:
            self._drop(job)
            raise RequestCancelled("the client went away") from None
        except FutureTimeout:
            if job.future.cancel():  # still queued: dropped, never run
                self._drop(job)
            raise RequestTimeout("the request took longer than its time limit") from None
        finally:
            ticket._hold(None)

    def _drop(self, job: _Job) -> None:
        """A cancelled job out of the queue at once (its crops' memory freed), not when the worker reaches it."""
        with self._cond:
            self.dropped += 1
            try:
                self._queue.remove(job)
            except ValueError:
                pass  # the worker has already taken it (and skips it)

    def close(self) -> None:
        """Stop the worker once the calls already queued are done; later requests are refused."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._queue and not self._closed and self._thread is me:
                    self._cond.wait()
                if not self._queue or self._thread is not me:
                    return  # closed and every queued call done, or a newer worker owns the queue now
                job = self._queue.popleft()
                if not job.future.set_running_or_notify_cancel():
                    continue
                batch, count = [job], len(job.pixel_values)
                deadline = time.monotonic() + self.max_wait_s
                while count < self.max_batch:
                    if self._queue:
                        more = self._queue[0]
                        if more.key != job.key or count + len(more.pixel_values) > self.max_batch:
                            break  # the first of the next batch
                        self._queue.popleft()
                        if more.future.set_running_or_notify_cancel():
                            batch.append(more)
                            count += len(more.pixel_values)
                        continue
                    # Wait only for admitted requests whose crops are not in this batch yet, and not past max_wait.
                    left = deadline - time.monotonic()
                    if self._closed or left <= 0 or self.pending <= len(batch):
                        break
                    self._cond.wait(left)
            self._compute(batch, count)

    def _compute(self, batch: list[_Job], count: int) -> None:
        try:
            start = time.perf_counter()
            pixel_values = batch[0].pixel_values if len(batch) == 1 else torch.cat([j.pixel_values for j in batch])
            with torch.inference_mode():
                heatmaps = self.model(pixel_values, **batch[0].kwargs).heatmaps
            seconds = time.perf_counter() - start
            self.model_calls += 1
            self.crops += count
            self.batch_sizes = [*self.batch_sizes[-999:], count]
            first = 0
            for j in batch:
                n = len(j.pixel_values)
                j.future.set_result(SimpleNamespace(heatmaps=heatmaps[first : first + n]))
                first += n
            if self.on_batch is not None:
                self.on_batch(count, seconds)
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


__all__ = ["BatchedModel", "MicroBatcher", "QueueFull", "RequestCancelled", "RequestTimeout", "Ticket"]
