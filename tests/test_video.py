"""`vitpose video`: reading and writing, tracking through a crossing and a detector gap, --det-every, One Euro
smoothing, bounded memory over 2,000 frames, truncated and non-video files, Ctrl-C, and the command line."""

from __future__ import annotations

import argparse
import gc
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import make_hf_model, save_hf
from vitpose import VitPoseConfig, VitPoseForPoseEstimation
from vitpose.cli.video import add_parser
from vitpose.detectors import Detections
from vitpose.inference.estimator import PoseEstimator
from vitpose.inference.results import PoseResult
from vitpose.video import (
    Frame,
    FrameResult,
    OneEuroFilter,
    PoseTracker,
    Track,
    VideoReadWarning,
    boxes_from_keypoints,
    linear_assignment,
    open_video,
    process_video,
    track_video,
)

WIDTH, HEIGHT, FPS, FRAMES = 320, 240, 25.0, 40
GAP = (30, 31)  # the detector sees nobody in these frames
BLOCK = 8  # the frame index is drawn as 8 black/white blocks of 8x8 px along the bottom edge


# ---------------------------------------------------------------------------------------------- the test video
def figure_boxes(index: int) -> dict[str, list[float]]:
    """Ground-truth boxes (COCO xywh) of the two figures: A walks right, B walks left; they cross at frame 20."""
    return {"A": [20.0 + 6 * index, 40.0, 40.0, 90.0], "B": [260.0 - 6 * index, 70.0, 40.0, 90.0]}


def draw_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """RGB frame: two stick figures in coloured boxes on grey, and the frame index in binary blocks."""
    image = np.full((height, width, 3), 110, np.uint8)
    for name, (x, y, w, h) in figure_boxes(index).items():
        color = (220, 60, 60) if name == "A" else (60, 60, 220)
        x, y, w, h = int(x), int(y), int(w), int(h)
        cv2.rectangle(image, (x, y), (x + w, y + h), color, -1)
        cx = x + w // 2
        cv2.circle(image, (cx, y + 12), 8, (250, 220, 180), -1)
        cv2.line(image, (cx, y + 20), (cx, y + 60), (255, 255, 255), 3)
        cv2.line(image, (cx, y + 60), (x + 6, y + h - 4), (255, 255, 255), 3)
        cv2.line(image, (cx, y + 60), (x + w - 6, y + h - 4), (255, 255, 255), 3)
        cv2.line(image, (x + 4, y + 30), (x + w - 4, y + 30), (255, 255, 255), 3)
    for bit in range(8):
        value = 255 if (index >> bit) & 1 else 0
        image[height - BLOCK :, bit * BLOCK : (bit + 1) * BLOCK] = value
    return image


def frame_index(image: np.ndarray) -> int:
    """Read back the index drawn by `draw_frame` (robust to lossy codecs: the mean of each block's inside)."""
    height = image.shape[0]
    bits = [image[height - BLOCK + 2 : height - 2, b * BLOCK + 2 : (b + 1) * BLOCK - 2].mean() > 128 for b in range(8)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def write_video(path: Path, frames: int = FRAMES, fourcc: str = "mp4v", fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(cv2.cvtColor(draw_frame(i), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def video_info(path: Path) -> tuple[int, float, tuple[int, int]]:
    """(frames actually decodable, fps, (width, height)) of a written video."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    fps = capture.get(cv2.CAP_PROP_FPS)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count, fps, size


class ScriptedDetector:
    """The detector protocol with scripted boxes: reads the frame index drawn on each image and returns the
    figures' boxes (in an order that flips every frame; none in the `gap` frames). Counts calls and images."""

    def __init__(self, gap: tuple[int, ...] = (), boxes=None, interrupt_at_call: int | None = None) -> None:
        self.gap = set(gap)
        self.boxes = boxes or (lambda i: list(figure_boxes(i).values()))
        self.calls = 0
        self.images = 0
        self.seen: list[int] = []
        self.interrupt_at_call = interrupt_at_call

    def __call__(self, images, names=None) -> list[Detections]:
        self.calls += 1
        if self.interrupt_at_call is not None and self.calls >= self.interrupt_at_call:
            raise KeyboardInterrupt
        out = []
        for image in images:
            self.images += 1
            index = frame_index(image)
            self.seen.append(index)
            boxes = [] if index in self.gap else self.boxes(index)
            if index % 2:
                boxes = boxes[::-1]
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            out.append(Detections(boxes, np.full(len(boxes), 0.9, np.float32), np.zeros(len(boxes), np.int64)))
        return out


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core machine, two threads waiting on each other make small ops 5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_hf(make_hf_model(), tmp_path_factory.mktemp("video_ckpt") / "model")


@pytest.fixture(scope="module")
def base_estimator(checkpoint) -> PoseEstimator:
    return PoseEstimator.from_pretrained(checkpoint, device="cpu", detector="full-image", batch_size=16)


def with_detector(estimator: PoseEstimator, detector) -> PoseEstimator:
    """The same model and processor with another detector."""
    return PoseEstimator(estimator.model, estimator.processor, detector, batch_size=estimator.batch_size)


@pytest.fixture(scope="module")
def test_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "crossing.mp4")


def match_figures(boxes: np.ndarray, index: int) -> list[str]:
    """Which figure each result box is (the estimator keeps detector boxes as given)."""
    truth = figure_boxes(index)
    names = []
    for box in boxes:
        name = min(truth, key=lambda n: np.abs(np.asarray(truth[n]) - box).max())
        assert np.allclose(truth[name], box, atol=1e-3)
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------- tracking
def test_ids_stable_through_a_crossing_and_a_detector_gap_and_files_match(base_estimator, test_video, tmp_path):
    detector = ScriptedDetector(gap=GAP)
    estimator = with_detector(base_estimator, detector)
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    summary = process_video(estimator, test_video, out=out, jsonl=jsonl, progress=False)
    assert detector.seen == list(range(FRAMES))  # the index code survives the codec; every frame detected once
    assert summary.frames == FRAMES and not summary.interrupted and summary.stop_reason is None
    assert summary.tracks == 2  # two people, two ids: no new id after the crossing or the gap

    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == FRAMES
    frames = [f.image for f in open_video(test_video)]
    ids_of: dict[str, set[int]] = {"A": set(), "B": set()}
    for i, line in enumerate(lines):
        assert line["frame"] == i and line["timestamp"] == pytest.approx(i / FPS, abs=1e-6)
        people = line["people"]
        if i in GAP:
            assert people == []
            continue
        assert len(people) == 2
        boxes = np.array([p["bbox"] for p in people])
        for name, person in zip(match_figures(boxes, i), people, strict=True):
            ids_of[name].add(person["track_id"])
            assert np.asarray(person["keypoints"]).shape == (17, 2) and len(person["keypoint_scores"]) == 17
            assert {"box_score", "score"} <= set(person)
        # The values are the estimator's on that frame alone (coordinates written to 0.001 px, scores to 1e-5).
        alone = estimator(frames[i])
        for person in people:
            row = int(np.flatnonzero(np.abs(alone.boxes - np.asarray(person["bbox"])).max(axis=1) < 1e-3)[0])
            np.testing.assert_allclose(person["keypoints"], alone.keypoints[row], rtol=0, atol=6e-4)
            np.testing.assert_allclose(person["keypoint_scores"], alone.keypoint_scores[row], rtol=0, atol=6e-6)
            assert person["score"] == pytest.approx(float(alone.scores[row]), abs=6e-6)
            assert person["box_score"] == pytest.approx(0.9, abs=6e-6)  # the scripted detector's score
    assert len(ids_of["A"]) == 1 and len(ids_of["B"]) == 1 and ids_of["A"] != ids_of["B"]

    count, fps, size = video_info(out)
    assert (count, size) == (FRAMES, (WIDTH, HEIGHT)) and fps == pytest.approx(FPS)


def test_tracker_ids_max_age_and_no_reuse():
    sigmas = np.full(17, 0.08)
    tracker = PoseTracker(sigmas, max_age=2)
    kpts = np.random.default_rng(0).uniform(0, 40, (17, 2))

    def person(x: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.array([[x, 0.0, 40.0, 40.0]]), (kpts + np.array([x, 0]))[None], np.ones((1, 17))

    first = tracker.update(*person(0))[0]
    assert first == 1
    for _ in range(2):  # unseen for max_age = 2 frames: the track survives
        assert len(tracker.update(np.zeros((0, 4)), np.zeros((0, 17, 2)), np.zeros((0, 17)))) == 0
    assert tracker.update(*person(2))[0] == first
    for _ in range(3):  # unseen for 3 frames: it ends, and its id is not given again
        tracker.update(np.zeros((0, 4)), np.zeros((0, 17, 2)), np.zeros((0, 17)))
    assert tracker.tracks == []
    assert tracker.update(*person(2))[0] == 2
    # Two people swap their order in the list: the ids follow the people, not the positions.
    boxes = np.array([[2.0, 0, 40, 40], [200.0, 0, 40, 40]])
    pair = np.stack([kpts + np.array([2, 0]), kpts + np.array([200, 0])])
    both = tracker.update(boxes, pair, np.ones((2, 17)))
    shift = np.array([4.0, 0])
    swapped = tracker.update(boxes[::-1] + np.array([4, 0, 0, 0]), pair[::-1] + shift, np.ones((2, 17)))
    assert list(both) == [2, 3] and list(swapped) == [3, 2]


def test_known_ids_are_kept_without_association():
    tracker = PoseTracker(np.full(17, 0.08))
    kpts = np.random.default_rng(2).uniform(0, 40, (2, 17, 2))
    boxes = np.array([[0.0, 0, 40, 40], [300.0, 0, 40, 40]])
    assert list(tracker.update(boxes, kpts, np.ones((2, 17)))) == [1, 2]
    # Far from where they were (no overlap): association alone would start new tracks, known ids keep theirs.
    far = boxes + np.array([150.0, 200, 0, 0])
    assert list(tracker.update(far, kpts + 200, np.ones((2, 17)), known_ids=[2, 0])) == [2, 3]


def test_constant_velocity_carries_a_fast_track_through_a_gap():
    tracker = PoseTracker(np.full(17, 0.08), max_age=5)
    kpts = np.random.default_rng(1).uniform(0, 40, (17, 2))
    ids = []
    for frame in range(10):
        if frame in (5, 6, 7):
            tracker.update(np.zeros((0, 4)), np.zeros((0, 17, 2)), np.zeros((0, 17)))
            continue
        x = 15.0 * frame  # 15 px per frame: after a 3-frame gap the box moved 60 px, more than its width
        ids.append(tracker.update(np.array([[x, 0, 40, 80]]), (kpts + np.array([x, 0]))[None], np.ones((1, 17)))[0])
    assert set(ids) == {1}


def test_linear_assignment_is_optimal():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    for trial in range(300):
        n, m = rng.integers(0, 7, 2)
        cost = rng.integers(0, 4, (n, m)).astype(float) if trial % 2 else rng.random((n, m))
        rows, cols = linear_assignment(cost)
        ref_rows, ref_cols = scipy_optimize.linear_sum_assignment(cost)
        assert len(rows) == min(n, m) and len(set(cols.tolist())) == len(cols)
        assert cost[rows, cols].sum() == pytest.approx(cost[ref_rows, ref_cols].sum())


def test_boxes_from_keypoints_rule(base_estimator):
    dataset = base_estimator.dataset
    kpts = np.zeros((3, 17, 2), np.float32)
    kpts[0, :, 0], kpts[0, :, 1] = np.linspace(100, 140, 17), np.linspace(50, 130, 17)
    kpts[1] = kpts[0] - [95, 45]  # reaches past the top-left corner: clipped
    kpts[2] = kpts[0]
    scores = np.full((3, 17), 0.9, np.float32)
    scores[0, 0] = 0.1  # below kpt_thr: not counted
    kpts[0, 0] = [0, 0]
    scores[2, 1:] = 0.1  # one keypoint above the threshold: not carried over
    result = PoseResult(
        keypoints=kpts,
        keypoint_scores=scores,
        boxes=np.tile([1, 1, 10, 10], (3, 1)).astype(np.float32),
        box_scores=np.array([0.8, 0.7, 0.6], np.float32),
        scores=np.ones(3, np.float32),
        dataset=dataset,
        image_size=(640, 480),
    )
    boxes, box_scores, origin = boxes_from_keypoints(result, kpt_thr=0.3, scale=1.25)
    assert boxes.shape == (2, 4) and list(box_scores) == pytest.approx([0.8, 0.7]) and list(origin) == [0, 1]
    lo, hi = kpts[0, 1:].min(0), kpts[0, 1:].max(0)
    size = (hi - lo) * 1.25
    assert boxes[0] == pytest.approx([*((lo + hi) / 2 - size / 2), *size])
    lo, hi = kpts[1].min(0), kpts[1].max(0)
    x2, y2 = (lo + hi) / 2 + (hi - lo) * 1.25 / 2
    assert boxes[1] == pytest.approx([0, 0, x2, y2])  # clipped at the image's top-left corner


# ---------------------------------------------------------------------------------------------- --det-every
def test_det_every_1_equals_per_frame_predict(base_estimator, test_video):
    estimator = with_detector(base_estimator, ScriptedDetector(gap=GAP))
    frames = [f.image for f in open_video(test_video)]
    tracked = list(track_video(estimator, test_video, det_every=1, frame_batch=8))
    assert [f.index for f in tracked] == list(range(FRAMES)) and all(f.detected for f in tracked)
    for frame, image in zip(tracked, frames, strict=True):
        alone = estimator(image)
        assert np.array_equal(frame.result.keypoints, alone.keypoints)
        assert np.array_equal(frame.result.keypoint_scores, alone.keypoint_scores)
        assert np.array_equal(frame.result.boxes, alone.boxes) and np.array_equal(frame.result.scores, alone.scores)


@pytest.mark.parametrize("frame_batch", [1, 8])
def test_det_every_5_runs_the_detector_a_fifth_as_often(base_estimator, test_video, frame_batch):
    counts = {}
    for every in (1, 5):
        detector = ScriptedDetector()
        estimator = with_detector(base_estimator, detector)
        results = list(track_video(estimator, test_video, det_every=every, frame_batch=frame_batch))
        assert len(results) == FRAMES
        assert [f.detected for f in results] == [i % every == 0 for i in range(FRAMES)]
        assert detector.seen == list(range(0, FRAMES, every))
        if every == 5:
            assert all(len(f) > 0 for f in results)  # the frames between carry the people over
            for f in results:  # ... and each pose keeps the id of the pose its box came from
                assert sorted(f.track_ids) == sorted(results[f.index - f.index % 5].track_ids)
        counts[every] = (detector.calls, detector.images)
    assert counts[5][1] * 5 == counts[1][1] == FRAMES
    if frame_batch == 1:
        assert counts[5][0] * 5 == counts[1][0] == FRAMES


# ---------------------------------------------------------------------------------------------- One Euro filter
def test_one_euro_constant_noise_and_step():
    times = np.arange(300) / 30.0
    f = OneEuroFilter(min_cutoff=1.0, beta=0.007)
    constant = np.array([[12.5, -3.0], [100.0, 7.25]])
    assert all(np.allclose(f(constant, t), constant, rtol=0, atol=1e-9) for t in times)

    rng = np.random.default_rng(0)
    noisy = 50.0 + rng.normal(0, 2.0, (300, 17, 2))
    f = OneEuroFilter(min_cutoff=1.0, beta=0.007)
    smoothed = np.stack([f(x, t) for x, t in zip(noisy, times, strict=True)])
    assert smoothed[60:].var() < noisy[60:].var() / 5  # about 10x at 30 fps and 1 Hz
    assert abs(smoothed[60:].mean() - 50.0) < 0.2

    step = np.where(times < 2.0, 0.0, 100.0)
    slow = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    fast = OneEuroFilter(min_cutoff=1.0, beta=0.05)
    out_slow = np.array([slow(np.array([v]), t)[0] for v, t in zip(step, times, strict=True)])
    out_fast = np.array([fast(np.array([v]), t)[0] for v, t in zip(step, times, strict=True)])
    after = times >= 2.0
    for out in (out_slow, out_fast):
        assert np.all(out[~after] == 0) and np.all(np.diff(out) >= -1e-9) and np.all(out <= 100 + 1e-9)
        assert out[times >= 3.0][0] > 95  # within 5 % one second after the step
        assert out[-1] == pytest.approx(100, abs=1e-3)
    first_after = np.flatnonzero(after)[:5]
    assert np.all(out_fast[first_after] > out_slow[first_after])  # beta: less lag on fast moves

    # The values, against the paper's recurrence written out here, on a signal that moves (beta matters).
    signal = np.cumsum(rng.normal(0, 3.0, (60, 4, 2)), axis=0)
    stamps = np.cumsum(rng.uniform(0.02, 0.05, 60))  # uneven frame times
    f_ref = OneEuroFilter(min_cutoff=0.8, beta=0.05, d_cutoff=1.5)
    np.testing.assert_allclose(
        np.stack([f_ref(x, t) for x, t in zip(signal, stamps, strict=True)]),
        one_euro_reference(signal, stamps, 0.8, 0.05, 1.5),
        rtol=1e-12,
        atol=1e-9,
    )

    with pytest.raises(ValueError, match="increase"):
        f(noisy[0], times[0])
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0)


def one_euro_reference(xs: np.ndarray, ts: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float) -> np.ndarray:
    """The One Euro filter (Casiez et al. 2012) over samples xs[i] at times ts[i], element by element."""

    def alpha(cutoff, dt):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    out = [np.asarray(xs[0], np.float64)]
    dx_hat = np.zeros_like(out[0])
    for i in range(1, len(xs)):
        dt = ts[i] - ts[i - 1]
        dx_hat = alpha(d_cutoff, dt) * (xs[i] - out[-1]) / dt + (1 - alpha(d_cutoff, dt)) * dx_hat
        a = alpha(min_cutoff + beta * np.abs(dx_hat), dt)
        out.append(a * xs[i] + (1 - a) * out[-1])
    return np.stack(out)


def test_smoothing_changes_keypoints_only(base_estimator, test_video):
    estimator = with_detector(base_estimator, ScriptedDetector())
    plain = list(track_video(estimator, test_video, max_frames=10))
    smooth = list(track_video(estimator, test_video, max_frames=10, smooth=True, min_cutoff=0.5, beta=0.0))
    assert len(plain) == len(smooth) == 10
    assert np.array_equal(smooth[0].result.keypoints, plain[0].result.keypoints)  # new tracks start unfiltered
    moved = [not np.allclose(s.result.keypoints, p.result.keypoints) for s, p in zip(smooth, plain, strict=True)]
    assert any(moved[1:])
    for s, p in zip(smooth, plain, strict=True):
        assert np.array_equal(s.result.extra["raw_keypoints"], p.result.keypoints)
        assert np.array_equal(s.result.keypoint_scores, p.result.keypoint_scores)
        assert list(s.track_ids) == list(p.track_ids)
    # Each track's keypoints are its raw keypoints through its own One Euro filter, at the frames' timestamps.
    for track_id in {int(t) for f in plain for t in f.track_ids}:
        rows = [(f.index, list(f.track_ids).index(track_id)) for f in plain if track_id in list(f.track_ids)]
        assert [index for index, _ in rows] == list(range(10))  # both figures are seen in every frame
        raw = np.stack([plain[index].result.keypoints[row] for index, row in rows]).astype(np.float64)
        want = one_euro_reference(raw, np.array([smooth[i].timestamp for i in range(10)]), 0.5, 0.0, 1.0)
        got = np.stack([smooth[index].result.keypoints[row] for index, row in rows])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)
    assert [f.timestamp for f in smooth] == pytest.approx([i / FPS for i in range(10)])


# ---------------------------------------------------------------------------------------------- streaming
def live_objects() -> int:
    """Live objects of the per-frame types (frames, results, tracks, filters)."""
    kinds = (Frame, FrameResult, PoseResult, Track, OneEuroFilter, Detections)
    return sum(type(o) in kinds for o in gc.get_objects())


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux) for the resident set size")
def test_memory_stays_flat_over_2000_frames(tmp_path):
    # A native model with a 64x48 input keeps 2,000 frames of network work to a few seconds.
    config = VitPoseConfig.from_preset(
        "small", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=(64, 48)
    )
    torch.manual_seed(0)
    model = VitPoseForPoseEstimation(config).eval()
    samples: dict[int, tuple[int, int]] = {}

    class CountingDetector:
        """Frame i (counted: the detector runs on every frame): person 1 always; person 2 in the frames where
        i // 50 is even, so it comes and goes 20 times, each visit a new track (max_age 10)."""

        images = 0

        def __call__(self, images, names=None):
            out = []
            for _ in images:
                i = self.images
                self.images += 1
                if self.images in (500, 2000):
                    gc.collect()
                    samples[self.images] = (resident_bytes(), live_objects())
                people = [[2.0 + i % 3, 2.0, 40.0, 80.0]]
                if (i // 50) % 2 == 0:
                    people.append([70.0, 8.0, 40.0, 80.0])
                boxes = np.asarray(people, np.float32)
                out.append(Detections(boxes, np.full(len(boxes), 0.9, np.float32), np.zeros(len(boxes), np.int64)))
            return out

    detector = CountingDetector()
    estimator = PoseEstimator(model, detector=detector, batch_size=32)

    def frames():  # made on the fly: the source holds nothing
        rng = np.random.default_rng(0)
        for _ in range(2000):
            yield rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)  # 37 kB each: 55 MB if frames were kept

    out, jsonl = tmp_path / "long.avi", tmp_path / "long.jsonl"
    summary = process_video(estimator, frames(), out=out, jsonl=jsonl, progress=False, max_age=10)
    assert summary.frames == 2000 and detector.images == 2000
    rss_growth = samples[2000][0] - samples[500][0]
    assert rss_growth < 24_000_000, f"resident memory grew by {rss_growth / 1e6:.1f} MB from frame 500 to 2000"
    objects = (samples[500][1], samples[2000][1])
    assert objects[1] <= objects[0] + 20, f"live frames/results/tracks at frame 500 and 2000: {objects}"
    assert summary.tracks == 21  # person 1 kept one id; person 2 got a new one per visit (no reuse)
    assert len(jsonl.read_text().splitlines()) == 2000
    assert video_info(out)[0] == 2000


def test_ctrl_c_closes_the_files_cleanly(base_estimator, test_video, tmp_path):
    detector = ScriptedDetector(interrupt_at_call=3)
    estimator = with_detector(base_estimator, detector)
    out, jsonl = tmp_path / "cut.mp4", tmp_path / "cut.jsonl"
    summary = process_video(estimator, test_video, out=out, jsonl=jsonl, progress=False, frame_batch=4)
    assert summary.interrupted and summary.frames == 8 and summary.last_frame == 7
    assert [json.loads(line)["frame"] for line in jsonl.read_text().splitlines()] == list(range(8))
    assert jsonl.read_text().endswith("\n")
    assert video_info(out)[0] == 8


# ---------------------------------------------------------------------------------------------- bad inputs
def test_truncated_video_processes_the_frames_read(checkpoint, tmp_path, capsys):
    full = write_video(tmp_path / "full.avi", fourcc="MJPG")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(VideoReadWarning, match=r"stopped at frame \d+ \(0-based\) of the 40 frames"):
        readable = sum(1 for _ in open_video(cut))
    assert 0 < readable < FRAMES

    out = tmp_path / "cut_pose.avi"
    code = run_cli(
        [str(cut), "--out", str(out), "--model", str(checkpoint), "--detector", "full-image", "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"stopped at frame {readable} (0-based) of the {FRAMES} frames" in err
    lines = (tmp_path / "cut_pose.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(readable))
    assert video_info(out)[0] == readable

    # An .mp4 cut short loses its index: it cannot be opened at all, and the error says so.
    mp4 = write_video(tmp_path / "full.mp4")
    cut_mp4 = tmp_path / "cut.mp4"
    cut_mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cannot open it as a video.*truncated"):
        open_video(cut_mp4)


def test_non_video_inputs_give_clear_errors(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 20)
    with pytest.raises(ValueError, match=r"notes\.mp4: OpenCV cannot open it as a video"):
        open_video(text)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        open_video(empty)
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_video(tmp_path / "missing.mp4")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        open_video(tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"cannot write a video with suffix '\.gif'"):
        process_video(None, text, out=tmp_path / "out.gif")


def test_camera_index_is_read_frame_by_frame(base_estimator, monkeypatch):
    import vitpose.video.io as video_io

    class FakeCamera:
        """cv2.VideoCapture(int) of a camera that reports no frame rate and delivers 6 frames, then stops."""

        def __init__(self, index):
            self.index, self.served = index, 0

        def isOpened(self):
            return self.index == 0

        def get(self, prop):
            return 0.0

        def read(self):
            if self.served == 6:
                return False, None
            self.served += 1
            return True, cv2.cvtColor(draw_frame(self.served - 1), cv2.COLOR_RGB2BGR)

        def release(self):
            pass

    monkeypatch.setattr(video_io.cv2, "VideoCapture", FakeCamera)
    with pytest.raises(OSError, match="camera 1: cannot open"):
        open_video(1)
    detector = ScriptedDetector()
    video = track_video(with_detector(base_estimator, detector), "0")
    assert video.source.fps == 30.0 and video.tracker.frame_batch == 1  # no batching latency for a camera
    with pytest.warns(VideoReadWarning, match="stopped delivering frames"):
        frames = list(video)
    assert [f.index for f in frames] == list(range(6)) and detector.calls == 6
    times = [f.timestamp for f in frames]
    assert times[0] == 0.0 and times == sorted(times)  # wall-clock seconds
    assert video.source.stop_reason == "camera 0: stopped delivering frames after frame 5"


# ---------------------------------------------------------------------------------------------- command line
def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vitpose")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["video", *argv, "--no-progress"])
    return args.func(args)


def test_cli_image_sequence_with_fps_det_every_and_smoothing(checkpoint, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):  # natural order: frame_2 before frame_10
        cv2.imwrite(str(folder / f"frame_{i}.png"), cv2.cvtColor(draw_frame(i), cv2.COLOR_RGB2BGR))
    out, jsonl = tmp_path / "seq.avi", tmp_path / "seq_results.jsonl"
    argv = [str(folder), "--out", str(out), "--jsonl", str(jsonl), "--fps", "10", "--model", str(checkpoint)]
    argv += ["--detector", "full-image", "--device", "cpu", "--det-every", "4", "--smooth", "--max-frames", "10"]
    assert run_cli(argv) == 0
    assert "10 frames" in capsys.readouterr().out
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(10))
    assert [line["timestamp"] for line in lines] == pytest.approx([i / 10 for i in range(10)])
    assert [Path(line["file_name"]).name for line in lines] == [f"frame_{i}.png" for i in range(10)]
    assert [line["detected"] for line in lines] == [i % 4 == 0 for i in range(10)]
    for line in lines[::4]:  # the full-image detector: one person, the whole frame
        assert [p["bbox"] for p in line["people"]] == [[0.0, 0.0, float(WIDTH), float(HEIGHT)]]
    count, fps, size = video_info(out)
    assert (count, size) == (10, (WIDTH, HEIGHT)) and fps == pytest.approx(10)


def test_cli_argument_errors(checkpoint, tmp_path, test_video):
    with pytest.raises(ValueError, match="nothing to write"):
        run_cli([str(test_video)])
    with pytest.raises(ValueError, match="suffix"):
        run_cli([str(test_video), "--out", str(tmp_path / "x.txt")])
    with pytest.raises(SystemExit):
        run_cli([str(test_video), "--out", str(tmp_path / "x.mp4"), "--det-every", "0"])
    with pytest.raises(FileNotFoundError, match="no such file"):
        run_cli([str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "x.mp4"), "--model", str(checkpoint)])
