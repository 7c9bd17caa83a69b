"""Sample-parallel inference on the CPU.

Run as one stream of T-thread operations, a batch leaves cores idle at the end of every operation (each one is an
OpenMP fork/join) and multiplies matrices whose blocks split unevenly over the threads. Cutting the batch into S
slices run side by side, each a stream of T/S-thread operations, keeps every core on its own work between the
slices' start and end: on the 2-core benchmark machine ViT-B at batch 8 runs about 1.14x faster as 2 one-thread
streams than as one two-thread stream (`benchmarks/run.py` measures it). Every sample is computed on its own as
before, so the outputs are those of the one-stream run up to float rounding (matrix-multiply blocking differs with
the batch size).

Only inference on the CPU is split (gradients off, at least two threads, at least `MIN_PER_STREAM` samples per
stream); training, autograd, tracing, ONNX export and `torch.compile` always see the plain single-stream forward.

The package's process-wide thread pools live here, and only here: the streams' pool, the processor's crop pool
(`crop_pool`: cutting crops with cv2 on two threads) and the I/O pool of the job stages (`io_pool`), each rebuilt
after a fork. So do the two building blocks of the overlapped job stages: `ordered_map` (a function over items on a
pool, results in order, a bounded window ahead) and `background` (an iterator run on a thread of its own, behind a
bounded queue).

Thread counts: a stream's worker thread is given its share of the caller's intra-op threads once, when the pool is
built (PyTorch's thread count is per thread after its first use), and the process-wide default that
`torch.set_num_threads` also writes is put back at once, so threads the user starts later are not affected.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

import torch

# A stream needs a few samples to gain: one sample per one-thread stream is no faster than one sample per thread of
# a shared stream (the matrix multiplies are as small either way), and an odd one out then waits for the rest.
MIN_PER_STREAM = 2
_LOCK = threading.Lock()
# The package's process-wide worker pools (the one home of them), by purpose: purpose -> (pid, size, pool). A pool is
# rebuilt after a fork (a child inherits the object, not its threads) and when it does not fit the size asked for.
_POOLS: dict[str, tuple[int, tuple[int, ...], ThreadPoolExecutor]] = {}


def _is_special_mode() -> bool:
    """Tracing, ONNX export or torch.compile: these must see the plain forward."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    try:
        if torch.onnx.is_in_onnx_export():
            return True
    except AttributeError:  # pragma: no cover - older torch
        pass
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


def cpu_streams(batch: int, device: torch.device, limit: int | None = None) -> int:
    """How many side-by-side streams to run a batch of `batch` samples on `device` in (1 = the plain forward).

    Args:
        batch: samples in the batch.
        device: where the batch is; only the CPU is split.
        limit: the model's `cpu_streams` setting: None = as many as there are intra-op threads, 1 = off, n = at most n.
    """
    if device.type != "cpu" or batch < 2 or torch.is_grad_enabled() or _is_special_mode():
        return 1
    threads = torch.get_num_threads()
    streams = min(batch // MIN_PER_STREAM, threads)
    if limit is not None:
        streams = min(streams, max(1, int(limit)))
    return max(1, streams)


def _shared_pool(
    purpose: str,
    size: tuple[int, ...],
    fits: Callable[[tuple[int, ...]], bool],
    build: Callable[[], ThreadPoolExecutor],
) -> ThreadPoolExecutor:
    """The process-wide pool for `purpose`: the existing one where it was built in this process and `fits(its
    size)`, else a new one from `build()` (the one it replaces is shut down without waiting)."""
    with _LOCK:
        entry = _POOLS.get(purpose)
        if entry is not None and entry[0] == os.getpid() and fits(entry[1]):
            return entry[2]
        if entry is not None and entry[0] == os.getpid():
            entry[2].shutdown(wait=False)
        pool = build()
        _POOLS[purpose] = (os.getpid(), size, pool)
        return pool


def crop_pool(workers: int) -> ThreadPoolExecutor:
    """The pool of the processor's crop threads (cv2 and numpy release the GIL): at least `workers` threads."""
    return _shared_pool(
        "crop",
        (workers,),
        lambda size: size[0] >= workers,
        lambda: ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vitpose-crop"),
    )


def _pool(streams: int, per_stream: int) -> ThreadPoolExecutor:
    def build() -> ThreadPoolExecutor:
        caller_threads = torch.get_num_threads()
        ready = threading.Barrier(streams + 1)

        def init() -> None:
            torch.get_num_threads()  # PyTorch's per-thread set-up first, so that it cannot undo the next line
            torch.set_num_threads(per_stream)
            ready.wait()

        pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix="vitpose-stream", initializer=init)
        for _ in range(streams):  # start every worker now (the executor starts them lazily)
            pool.submit(int)
        ready.wait()
        # torch.set_num_threads also sets the default of threads that start later: give it back its value.
        torch.set_num_threads(caller_threads)
        return pool

    return _shared_pool("stream", (streams, per_stream), lambda size: size == (streams, per_stream), build)


def run_streams(fn: Callable[[slice], torch.Tensor], batch: int, streams: int) -> torch.Tensor:
    """`fn` over a batch cut into `streams` equal slices run side by side, results concatenated along dim 0.

    Each stream gets ``batch // streams`` samples and ``threads // streams`` intra-op threads; the remainder
    (fewer samples than streams) runs afterwards in the calling thread with all threads, which is faster than an
    uneven split.

    Args:
        fn: maps a slice of the batch to a tensor whose first dimension is that slice's length.
        batch: samples in the batch.
        streams: from :func:`cpu_streams`.

    Returns:
        ``torch.cat([fn(slice) for each slice in order])``.
    """
    if streams <= 1:
        return fn(slice(0, batch))
    per_stream = max(1, torch.get_num_threads() // streams)
    pool = _pool(streams, per_stream)
    inference = torch.is_inference_mode_enabled()
    size = batch // streams

    def task(part: slice) -> torch.Tensor:
        with torch.inference_mode(inference), torch.no_grad():
            return fn(part)

    futures = [pool.submit(task, slice(i * size, (i + 1) * size)) for i in range(streams)]
    parts = [f.result() for f in futures]
    if streams * size < batch:
        parts.append(fn(slice(streams * size, batch)))
    return torch.cat(parts)


# ---------------------------------------------------------------------------------------------- overlapped stages
IO_WORKERS = max(2, min(8, os.cpu_count() or 2))
"""Threads of the I/O pool (`io_pool`): decoding and encoding images (PIL, cv2), drawing and writing files all
release the GIL for most of their time; a few threads per core keep the cores busy while one waits on the disk."""


def io_pool() -> ThreadPoolExecutor:
    """The pool of the job stages that release the GIL (image decoding and encoding, drawing, warps, file writes):
    `IO_WORKERS` threads, shared by every job of the process."""
    return _shared_pool(
        "io",
        (IO_WORKERS,),
        lambda size: size[0] >= IO_WORKERS,
        lambda: ThreadPoolExecutor(max_workers=IO_WORKERS, thread_name_prefix="vitpose-io"),
    )


def ordered_map(
    fn: Callable[[Any], Any], items: Iterable[Any], *, window: int, pool: ThreadPoolExecutor | None = None
) -> Iterator[Any]:
    """`fn` over `items` on a worker pool, at most `window` calls in flight, the results yielded in input order.

    `items` is pulled from the calling thread, `window` ahead of what was yielded (each call runs in a copy of the
    caller's `contextvars` context): memory is bounded by `window`
    results, not by the input. An exception of `fn(item)` is raised when that item's turn comes, and one of `items`
    itself after the results of the items before it. Closing the generator (or an exception in the consumer)
    cancels the calls not started and waits for those running, so that no call outlives it.

    Args:
        fn: one item -> its result; called on the pool's threads.
        items: the inputs, in order.
        window: calls submitted ahead of the consumer (>= 1).
        pool: default `io_pool()`.
    """
    pool = pool or io_pool()
    pending: collections.deque[Future[Any]] = collections.deque()
    iterator = iter(items)
    try:
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                break
            except BaseException:  # the input failed: the results before it first, then its error
                while pending:
                    yield pending.popleft().result()
                raise
            pending.append(pool.submit(contextvars.copy_context().run, fn, item))  # in the caller's context
            if len(pending) >= max(1, window):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        futures_wait(pending)


_END = object()
JOB_SWITCH_INTERVAL = 0.0002
"""Seconds a thread may hold the GIL while others wait for it (`sys.setswitchinterval`), while overlapped stages
run. Python's default, 5 ms, makes the network's thread wait up to 5 ms for the GIL after each of its operations
whenever another stage runs Python code: a convoy that halved a tiny model's throughput on two cores."""
_switch_lock = threading.Lock()
_switch = {"users": 0, "before": 0.0}  # blocks running, and the interval the process had before the first


@contextlib.contextmanager
def job_switch_interval() -> Iterator[None]:
    """`JOB_SWITCH_INTERVAL` while the block runs (the last of nested or concurrent blocks to end restores the
    interval the process had before the first one)."""
    with _switch_lock:
        if not _switch["users"]:
            _switch["before"] = sys.getswitchinterval()
            sys.setswitchinterval(min(JOB_SWITCH_INTERVAL, _switch["before"]))
        _switch["users"] += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch["users"] -= 1
            if not _switch["users"]:
                sys.setswitchinterval(_switch["before"])


def background(items: Iterable[Any], *, maxsize: int, name: str) -> Iterator[Any]:
    """Iterate `items` on a thread of its own, handing its items over a queue of at most `maxsize` waiting items.

    A stage of a pipeline: while the consumer works on one item, the thread produces the next ones, and it waits
    when `maxsize` are waiting (memory is bounded by the queue, not by the input). Items arrive in order; an
    exception of `items` is raised in the consumer at its place in the stream (after the items before it). Closing
    the generator (the consumer stops early, or is interrupted) stops the thread at its next item and waits for it:
    nothing of the stage runs once the generator is closed. The thread runs under the consumer's inference and
    grad modes (both are per thread in PyTorch) and in a copy of its `contextvars` context; while it runs, the
    process's GIL switch interval is `JOB_SWITCH_INTERVAL`.

    Args:
        items: an iterable (a generator is closed on the stage's thread when the stage ends).
        maxsize: items waiting in the queue (>= 1).
        name: the thread's name (shown by debuggers and profilers).
    """
    handover: queue.Queue[tuple[Any, Any]] = queue.Queue(max(1, maxsize))
    stop = threading.Event()
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def put(kind: Any, value: Any) -> bool:
        while not stop.is_set():
            try:
                handover.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                for item in iterator:
                    if not put(None, item):
                        return
            put(_END, None)
        except BaseException as err:  # handed to the consumer, raised there
            put(_END, err)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    # The stage runs in a copy of the consumer's context: its context variables (a service request's deadline and
    # cancellation) hold on the stage's thread as they would in the consumer's.
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(produce,), name=f"vitpose-{name}", daemon=True
    )
    with job_switch_interval():
        thread.start()
        try:
            while True:
                kind, value = handover.get()
                if kind is _END:
                    if value is not None:
                        raise value
                    return
                yield value
        finally:
            stop.set()
            thread.join()
