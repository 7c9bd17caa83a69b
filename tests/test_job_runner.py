"""The overlapped job stages: `ordered_map` and `background` (order, errors at their place, bounded memory, clean
stops), and the estimator's stages built on them (results and order as before, lazy and bounded reading, early
close, errors, the decoded images handed out)."""

from __future__ import annotations

import random
import shutil
import sys
import threading
import time

import numpy as np
import pytest
import torch

from conftest import coco_images_and_boxes, make_hf_model, save_hf
from vitpose.detectors.base import Detections
from vitpose.errors import DetectorError, ImageReadError
from vitpose.inference.estimator import PoseEstimator
from vitpose.media import FailedImage, load_image
from vitpose.parallel import JOB_SWITCH_INTERVAL, background, ordered_map


def _stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("vitpose-prepare", "vitpose-network")]


# ------------------------------------------------------------------------------------------------ ordered_map
def test_ordered_map_keeps_the_input_order_whatever_finishes_first():
    rng = random.Random(0)
    delays = [rng.uniform(0, 0.01) for _ in range(40)]

    def slow_square(i):
        time.sleep(delays[i])
        return i * i

    assert list(ordered_map(slow_square, range(40), window=6)) == [i * i for i in range(40)]


def test_ordered_map_raises_at_the_failing_items_turn():
    def fail_on_7(i):
        if i == 7:
            raise ValueError("item 7 is bad")
        return i

    got = []
    with pytest.raises(ValueError, match="item 7 is bad"):
        for value in ordered_map(fail_on_7, range(20), window=4):
            got.append(value)
    assert got == list(range(7))


def test_ordered_map_pulls_at_most_a_window_ahead_and_close_waits_for_running_calls():
    pulled = []
    running = []
    lock = threading.Lock()

    def items():
        for i in range(1000):
            pulled.append(i)
            yield i

    def work(i):
        with lock:
            running.append(i)
        time.sleep(0.005)
        with lock:
            running.remove(i)
        return i

    stream = ordered_map(work, items(), window=3)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    assert len(pulled) <= 5 + 3  # bounded by the window, not by the input
    stream.close()
    assert running == []  # nothing of the map runs once it is closed
    count = len(pulled)
    time.sleep(0.02)
    assert len(pulled) == count


# ------------------------------------------------------------------------------------------------ background
def test_background_hands_items_over_in_order_and_raises_at_the_place_of_an_error():
    def items():
        yield from range(5)
        raise KeyError("the sixth item")

    got = []
    with pytest.raises(KeyError, match="the sixth item"):
        for value in background(items(), maxsize=2, name="test"):
            got.append(value)
    assert got == [0, 1, 2, 3, 4]


def test_background_is_bounded_and_stops_its_thread_when_closed():
    pulled = []
    closed = threading.Event()

    def items():
        try:
            for i in range(10_000):
                pulled.append(i)
                yield i
        finally:
            closed.set()

    stream = background(items(), maxsize=2, name="bounded")
    assert next(stream) == 0
    time.sleep(0.05)  # the thread runs ahead ... up to the queue's size
    assert len(pulled) <= 1 + 2 + 1
    assert any(t.name == "vitpose-bounded" for t in threading.enumerate())
    stream.close()
    assert closed.is_set()  # the source generator was closed, on the stage's thread
    assert not any(t.name == "vitpose-bounded" for t in threading.enumerate())


def test_background_runs_in_the_consumers_inference_mode_with_a_short_switch_interval():
    before = sys.getswitchinterval()
    seen = []

    def items():
        seen.append((torch.is_inference_mode_enabled(), sys.getswitchinterval()))
        yield 1

    with torch.inference_mode():
        assert list(background(items(), maxsize=1, name="mode")) == [1]
    assert len(seen) == 1 and seen[0][0] is True
    assert seen[0][1] == pytest.approx(min(before, JOB_SWITCH_INTERVAL), rel=1e-6)
    assert sys.getswitchinterval() == before  # restored


# ------------------------------------------------------------------------------------------------ the estimator
@pytest.fixture(scope="module")
def estimator(tmp_path_factory):
    checkpoint = save_hf(make_hf_model(), tmp_path_factory.mktemp("ckpt") / "model")
    return PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image", batch_size=3)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Twelve image files (copies of the shared COCO photos) and their ground-truth boxes."""
    folder = tmp_path_factory.mktemp("images")
    out = []
    for i in range(12):
        path, boxes = coco_images_and_boxes()[i % 4]
        target = folder / f"img_{i:02d}.jpg"
        shutil.copy(path, target)
        out.append((str(target), boxes))
    return out


def _same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, FailedImage):
        assert (a.source, a.reason) == (b.source, b.reason)
        return
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert a.file_name == b.file_name and a.image_size == b.image_size


def test_results_do_not_depend_on_how_the_stages_cut_the_work(estimator, images):
    """One image at a time, one crop per network batch (every stage handing over the smallest pieces) and larger
    pieces (crops of several images sharing batches, one image's boxes spanning batches) give the same results,
    in the input order, as predicting each image alone."""
    paths, boxes = [p for p, _ in images], [b for _, b in images]
    alone = [estimator.predict([p], boxes=[b])[0] for p, b in images]
    small = list(estimator.iter_predict(paths, boxes=boxes, image_batch=1))
    large = list(estimator.iter_predict(paths, boxes=boxes, image_batch=5))
    assert len(small) == len(large) == len(alone) == 12
    for a, b, c in zip(alone, small, large, strict=True):
        _same(a, b)
        _same(a, c)
    assert [r.file_name for r in large] == paths
    assert sum(len(r) for r in large) == sum(len(b) for b in boxes) > 12


def test_failures_keep_their_place_and_do_not_disturb_the_others(estimator, images, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    paths = [p for p, _ in images[:6]]
    mixed = [*paths[:2], str(bad), *paths[2:4], str(tmp_path / "missing.jpg"), *paths[4:]]
    got = list(estimator.iter_predict(mixed, errors="report", image_batch=2))
    assert [isinstance(r, FailedImage) for r in got] == [False, False, True, False, False, True, False, False]
    assert got[2].source == str(bad) and got[5].source.endswith("missing.jpg")
    for want, result in zip(estimator.predict(paths), [r for r in got if not isinstance(r, FailedImage)], strict=True):
        _same(want, result)


def test_errors_raise_after_the_results_before_it(estimator, images, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG nothing")
    paths = [p for p, _ in images[:6]]
    got = []
    with pytest.raises(ImageReadError, match=r"broken\.png"):
        for result in estimator.iter_predict([*paths[:4], str(bad), *paths[4:]], image_batch=2):
            got.append(result)
    assert [r.file_name for r in got] == paths[:4]
    assert _stage_threads() == []


def test_images_are_read_lazily_and_memory_is_bounded_by_the_queues(estimator, images):
    """A long stream of images (a generator) is read a bounded distance ahead of what the caller took, not all at
    once; closing the results early stops every stage (no thread left, nothing read afterwards)."""
    pulled = []

    def stream():
        for i in range(10_000):
            pulled.append(i)
            yield images[i % len(images)][0]

    results = estimator.iter_predict(stream(), image_batch=2)
    first = [next(results) for _ in range(3)]
    assert all(r.file_name == images[i][0] for i, r in enumerate(first))
    time.sleep(0.3)  # let the stages run ahead as far as their queues allow
    assert len(pulled) <= 3 + 4 + 2 * 4 + 2  # read-ahead + about four image batches in the stages' hands
    results.close()
    assert _stage_threads() == []
    count = len(pulled)
    time.sleep(0.1)
    assert len(pulled) == count


def test_with_images_hands_out_the_decoded_image(estimator, images):
    paths = [p for p, _ in images[:3]]
    for (result, rgb), path in zip(estimator.iter_predict(paths, with_images=True), paths, strict=True):
        want, _ = load_image(path)
        assert rgb.dtype == np.uint8 and np.array_equal(rgb, want)
        assert result.image_size == (want.shape[1], want.shape[0])


def test_a_detector_error_stops_the_stages_and_reaches_the_caller(estimator, images):
    class Broken:
        calls = 0

        def __call__(self, images, names=None):
            Broken.calls += 1
            if Broken.calls > 1:
                raise DetectorError("the detector's weights are gone")
            return [Detections(np.array([[0.0, 0.0, 50.0, 80.0]]), np.array([0.9]), np.array([0])) for _ in images]

    paths = [p for p, _ in images]
    got = []
    with pytest.raises(DetectorError, match="weights are gone"):
        for result in estimator.with_detector(Broken()).iter_predict(paths, image_batch=3):
            got.append(result)
    assert len(got) == 3  # the first batch, detected before the detector broke
    assert _stage_threads() == []


def test_ordered_map_yields_the_finished_results_before_an_error_of_its_input():
    """The input failing (a video source interrupted, a reader's error) loses none of the results computed before."""

    def items():
        yield from range(5)
        raise KeyboardInterrupt

    got = []
    with pytest.raises(KeyboardInterrupt):
        for value in ordered_map(lambda i: i * 10, items(), window=8):
            got.append(value)
    assert got == [0, 10, 20, 30, 40]


def test_warnings_raised_on_the_stages_reach_the_caller_and_leave_the_warning_state_alone(estimator, images):
    """A box that does not fit its image is skipped with a warning raised on the detect-and-crop thread while the
    I/O pool decodes other images: the caller's warning capture gets every one of them, and the process's warning
    state (filters, display) is as before: no stage changes it (that state is shared by all threads, and a stage
    that caught warnings while another warned would lose or misroute them)."""
    import warnings

    from vitpose.detectors.boxes import SkippedBoxesWarning

    paths = [p for p, _ in images]
    boxes = [np.array([[10.0, 10.0, 50.0, 80.0], [5000.0, 5000.0, 50.0, 80.0]]) for _ in paths]
    before = (warnings.showwarning, list(warnings.filters))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = list(estimator.iter_predict(paths, boxes=boxes, image_batch=2))
    assert [len(r) for r in results] == [1] * len(paths)
    skipped = [w for w in caught if issubclass(w.category, SkippedBoxesWarning)]
    assert sorted(str(w.message).split(":")[0] for w in skipped) == sorted(paths)
    assert (warnings.showwarning, list(warnings.filters)) == before


def test_stages_run_in_the_callers_context():
    """Context variables (a service request's deadline and cancellation) hold on the stages' threads: the service
    times out and cancels a request's network calls made there as it does in the request's own thread."""
    import contextvars

    request = contextvars.ContextVar("request", default=None)
    token = request.set("request 7")
    try:
        seen = list(ordered_map(lambda i: (i, request.get()), range(3), window=2))

        def items():
            yield request.get()

        staged = list(background(items(), maxsize=1, name="ctx"))
    finally:
        request.reset(token)
    assert seen == [(0, "request 7"), (1, "request 7"), (2, "request 7")]
    assert staged == ["request 7"]
