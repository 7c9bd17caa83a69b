"""Pose tracking over a video: batched estimation, the detector every N frames, track ids, smoothing, writing.

    from vitpose import PoseEstimator
    from vitpose.video import track_video

    estimator = PoseEstimator.from_pretrained("usyd-community/vitpose-base-simple")
    for frame in track_video(estimator, "walk.mp4", det_every=5, smooth=True):
        frame.index, frame.timestamp      # 0-based frame index, seconds
        frame.track_ids                   # (N,) int64, stable across frames
        frame.result.keypoints            # (N, K, 2); frame.result is a PoseResult
        annotated = frame.draw()          # (H, W, 3) RGB with skeletons, boxes and ids

How a frame's boxes are found (`det_every = N`): at frames 0, N, 2N, ... (counted over the frames processed) the
estimator's detector runs, exactly as `PoseEstimator.predict` (its OKS-NMS included), so with N = 1 every result
equals a per-frame `predict`. At the frames between, each pose of the previous frame gives the next box
(`boxes_from_keypoints`): the bounding box of its keypoints scored above `kpt_thr` (at least two of them, else the
person is not carried over), enlarged `box_scale` = 1.25 times about its centre (as mmpose's and rtmlib's pose
trackers), clipped to the image; its box score is carried over; the poses found in these boxes go through the same
OKS-NMS, so two boxes drifting onto one person leave one pose, and each keeps the track id of the pose its box came
from (no association needed between detector frames).

Frames are processed `frame_batch` at a time: the crops of several frames share network batches. Between detector
frames each frame needs the previous frame's poses, so a batch runs in steps (all detector frames first, then the
first frame after each of them, and so on), each step one batched `predict` call.
"""

from __future__ import annotations

import colorsys
import contextlib
import dataclasses
import itertools
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vitpose.errors import VitPoseError
from vitpose.inference.results import PoseResult
from vitpose.ops.oks import pose_nms
from vitpose.outputs import progress_bar, protected
from vitpose.parallel import background, io_pool, ordered_map
from vitpose.video.io import (
    CameraSource,
    Frame,
    JsonlWriter,
    VideoSource,
    VideoWriter,
    check_outputs,
    open_video,
    writer_codec,
)
from vitpose.video.smoothing import OneEuroFilter
from vitpose.video.tracking import PoseTracker

JSONL_DECIMALS = (3, 5)
"""Decimals of the video JSON Lines: coordinates to 0.001 px, scores to 1e-5."""

__all__ = [
    "FrameResult",
    "TrackedVideo",
    "VideoPoseTracker",
    "VideoSummary",
    "boxes_from_keypoints",
    "process_video",
    "track_video",
]


@dataclass
class FrameResult:
    """The tracked poses of one frame.

    Attributes:
        index: the frame's index in its source (0-based).
        timestamp: seconds from the start of the source.
        result: the `PoseResult` (keypoints (N, K, 2), keypoint_scores (N, K), boxes (N, 4), box_scores (N,),
            scores (N,)); with smoothing, `keypoints` are the smoothed ones and `result.extra["raw_keypoints"]`
            holds the estimated ones.
        track_ids: (N,) int64 track id of each pose (>= 1; the same person keeps its id; ids are never reused).
        detected: whether the detector ran on this frame (else its boxes came from the previous frame's poses).
        image: the (H, W, 3) RGB frame (None when the tracker was told not to keep images).
        file_name: the image's path, for image sequences.
    """

    index: int
    timestamp: float
    result: PoseResult
    track_ids: np.ndarray
    detected: bool
    image: np.ndarray | None = None
    file_name: str | None = None

    def __len__(self) -> int:
        return len(self.result)

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines record: frame, timestamp (s), detected, [file_name,] and `people`, one
        `vitpose.inference.results.person_dict` per pose (the schema of `PoseResult.to_dict`'s instances) with its
        track_id first: track_id, bbox (COCO x, y, w, h), box_score, score, keypoints [[x, y], ...] and
        keypoint_scores (coordinates rounded to 0.001 px, scores to 1e-5)."""
        out: dict[str, Any] = {"frame": self.index, "timestamp": round(self.timestamp, 6), "detected": self.detected}
        if self.file_name is not None:
            out["file_name"] = self.file_name
        out["people"] = self.result.people(track_ids=self.track_ids, decimals=JSONL_DECIMALS)
        return out

    def draw(
        self, image: np.ndarray | None = None, kpt_thr: float = 0.3, show_ids: bool = True, **kwargs: Any
    ) -> np.ndarray:
        """The frame with skeletons (the data set's palette), and each person's box and id in its track's colour.

        Args:
            image: (H, W, 3) RGB to draw on (default: the frame itself).
            kpt_thr: keypoints (and their links) scored at or below this are not drawn.
            show_ids: draw boxes and track ids.
            kwargs: `vitpose.visualization.draw_poses` options (radius, thickness).

        Returns:
            a new (H, W, 3) uint8 RGB image.
        """
        if image is None:
            image = self.image
        if image is None:
            raise VitPoseError("this FrameResult keeps no image: pass the frame, draw(image)")
        canvas = self.result.draw(image, kpt_thr=kpt_thr, draw_boxes=False, **kwargs)
        if not show_ids or len(self) == 0:
            return canvas
        height, width = canvas.shape[:2]
        thickness = max(1, round(max(height, width) / 320))
        font_scale = max(0.35, max(height, width) / 1280)
        for box, track_id in zip(self.result.boxes, self.track_ids, strict=True):
            color = track_color(int(track_id))
            x, y, w, h = (float(v) for v in box)
            if not np.isfinite([x, y, w, h]).all():
                continue
            p1, p2 = (round(x), round(y)), (round(x + w), round(y + h))
            cv2.rectangle(canvas, p1, p2, color, thickness, cv2.LINE_AA)
            label = str(int(track_id))
            (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
            top = max(0, p1[1] - th - base - 2)
            cv2.rectangle(canvas, (p1[0], top), (p1[0] + tw + 4, top + th + base + 2), color, -1)
            cv2.putText(
                canvas,
                label,
                (p1[0] + 2, top + th + 1),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale,
                (255, 255, 255),
                thickness,
                cv2.LINE_AA,
            )
        return canvas


def track_color(track_id: int) -> tuple[int, int, int]:
    """A distinct RGB colour per track id (hues a golden-ratio step apart)."""
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.85, 0.95)
    return round(r * 255), round(g * 255), round(b * 255)


def boxes_from_keypoints(
    result: PoseResult,
    kpt_thr: float = 0.3,
    scale: float = 1.25,
    image_size: tuple[int, int] | None = None,
    min_keypoints: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The boxes in which to look for the previous frame's people (the frames between detector runs).

    Per pose: the bounding box of its keypoints scored above `kpt_thr` (poses with fewer than `min_keypoints` such
    keypoints are dropped), `scale` times as wide and as high about its centre (a side of zero becomes 1 px),
    clipped to the image; poses whose clipped box is under 1 px wide or high (they left the frame) are dropped.

    Args:
        result: the previous frame's poses.
        kpt_thr: keypoint score threshold.
        scale: enlargement (1.25, as rtmlib's and mmpose's pose trackers).
        image_size: (width, height) to clip to (default the result's `image_size`).
        min_keypoints: keypoints above `kpt_thr` a pose needs to be carried over.

    Returns:
        boxes (M, 4) float64 COCO [x, y, w, h], their scores (M,) float64 (the poses' box scores), and the index
        (M,) int64 of the pose each box comes from.
    """
    width, height = image_size if image_size is not None else result.image_size
    boxes, scores, index = [], [], []
    for i in range(len(result)):
        visible = result.keypoint_scores[i] > kpt_thr
        points = result.keypoints[i][visible].astype(np.float64)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points) < max(1, min_keypoints):
            continue
        low, high = points.min(axis=0), points.max(axis=0)
        if np.all(high - low <= 0):
            continue
        center = (low + high) / 2
        half = np.maximum((high - low) * scale, 1.0) / 2
        x1, y1 = max(center[0] - half[0], 0.0), max(center[1] - half[1], 0.0)
        x2, y2 = min(center[0] + half[0], float(width)), min(center[1] + half[1], float(height))
        if x2 - x1 < 1.0 or y2 - y1 < 1.0:
            continue
        boxes.append([x1, y1, x2 - x1, y2 - y1])
        scores.append(float(result.box_scores[i]))
        index.append(i)
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64), np.asarray(index, np.int64)


class VideoPoseTracker:
    """Runs a `PoseEstimator` over a stream of frames and tracks the people in it.

    Args:
        estimator: a `vitpose.PoseEstimator` (its detector, batch size, flip test, data set and NMS apply).
        det_every: run the detector every N frames (1: every frame); between, boxes come from the previous frame's
            keypoints (see `boxes_from_keypoints`).
        max_age: a track unmatched for more than this many consecutive frames ends (30).
        kpt_thr: keypoint score threshold for the boxes between detector frames and for the tracker's OKS (0.3).
        box_scale: enlargement of the keypoints' bounding box for the next frame (1.25).
        smooth: One Euro filter on each track's keypoints (off by default).
        min_cutoff, beta, d_cutoff: the filter's parameters (Hz, 1/px, Hz), see `OneEuroFilter`.
        frame_batch: frames processed together (8); their crops share network batches.
        iou_weight, min_similarity: the tracker's association (see `PoseTracker`).
        keep_images: keep each frame's image in its `FrameResult` (for drawing).

    `track(frames)` yields one `FrameResult` per frame, in order; the state (tracks, the frame counter of
    `det_every`) carries over between calls until `reset()`.
    """

    def __init__(
        self,
        estimator: Any,
        *,
        det_every: int = 1,
        max_age: int = 30,
        kpt_thr: float = 0.3,
        box_scale: float = 1.25,
        smooth: bool = False,
        min_cutoff: float = 1.0,
        beta: float = 0.007,
        d_cutoff: float = 1.0,
        frame_batch: int = 8,
        iou_weight: float = 0.5,
        min_similarity: float = 0.3,
        keep_images: bool = True,
    ) -> None:
        if int(det_every) < 1:
            raise VitPoseError(f"det_every must be >= 1, got {det_every}")
        if int(frame_batch) < 1:
            raise VitPoseError(f"frame_batch must be >= 1, got {frame_batch}")
        if not box_scale > 0:
            raise VitPoseError(f"box_scale must be > 0, got {box_scale}")
        self.estimator = estimator
        self.det_every = int(det_every)
        self.kpt_thr = float(kpt_thr)
        self.box_scale = float(box_scale)
        self.frame_batch = int(frame_batch)
        self.keep_images = keep_images
        self.smooth = smooth
        self.smoothing = {"min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff}
        OneEuroFilter(**self.smoothing)  # check the parameters now
        self.tracker = PoseTracker(
            estimator.dataset.sigmas,
            max_age=max_age,
            kpt_thr=kpt_thr,
            iou_weight=iou_weight,
            min_similarity=min_similarity,
        )
        self.frames_processed = 0
        self.detector_frames = 0
        self._last: PoseResult | None = None  # the previous frame's poses (as estimated, not smoothed)
        self._last_ids: np.ndarray | None = None  # and their track ids

    def reset(self) -> None:
        """Forget the tracks and the previous frame (the next frame runs the detector); ids keep counting up."""
        self.tracker.reset()
        self.frames_processed = 0
        self._last = None
        self._last_ids = None

    def track(self, frames: Iterable[Frame | np.ndarray]) -> Iterator[FrameResult]:
        """Yield the tracked poses of each frame, processing `frame_batch` frames at a time.

        Args:
            frames: `Frame`s (as a `VideoSource` yields), or RGB uint8 (H, W, 3) arrays (timestamps index / 30).
        """
        chunk: list[Frame] = []
        for position, frame in enumerate(frames):
            if not isinstance(frame, Frame):
                frame = Frame(position, position / 30.0, np.asarray(frame))
            chunk.append(frame)
            if len(chunk) == self.frame_batch:
                yield from self._process(chunk)
                chunk = []
        if chunk:
            yield from self._process(chunk)

    __call__ = track

    # ------------------------------------------------------------------ internals
    def _process(self, chunk: list[Frame]) -> Iterator[FrameResult]:
        steps = [(self.frames_processed + i) % self.det_every for i in range(len(chunk))]
        raw: list[PoseResult | None] = [None] * len(chunk)
        parents: list[np.ndarray | None] = [None] * len(chunk)  # pose of the previous frame each pose comes from
        for step in sorted(set(steps)):
            members = [i for i, s in enumerate(steps) if s == step]
            images = [chunk[i].image for i in members]
            if step == 0:
                for i, result in zip(members, self.estimator.predict(images), strict=True):
                    raw[i] = result
                self.detector_frames += len(images)
                continue
            boxes, scores, origins = [], [], []
            for i in members:
                previous = raw[i - 1] if i > 0 else self._last
                assert previous is not None  # frame 0 of a stream is a detector frame
                height, width = chunk[i].image.shape[:2]
                b, s, origin = boxes_from_keypoints(previous, self.kpt_thr, self.box_scale, (width, height))
                boxes.append(b)
                scores.append(s)
                origins.append(origin)
            results = self.estimator.predict(images, boxes=boxes, box_scores=scores)
            for i, result, origin in zip(members, results, origins, strict=True):
                keep = self._suppress(result)
                raw[i] = result if keep is None else result.select(keep)
                parents[i] = origin if keep is None else origin[keep]
        self.frames_processed += len(chunk)
        self._last = raw[-1]
        for frame, result, step, parent in zip(chunk, raw, steps, parents, strict=True):
            assert result is not None
            known = None if parent is None or self._last_ids is None else self._last_ids[parent]
            tracked = self._track_one(frame, result, detected=step == 0, known_ids=known)
            self._last_ids = tracked.track_ids
            yield tracked

    def _suppress(self, result: PoseResult) -> np.ndarray | None:
        """The estimator's OKS-NMS for poses found in boxes derived from keypoints: the sorted indices to keep, or
        None to keep all."""
        nms_thr = getattr(self.estimator, "nms_thr", None)
        if nms_thr is None or len(result) < 2:
            return None
        processor = self.estimator.processor
        keep = pose_nms(
            result.keypoints,
            result.scores,
            np.asarray(self.estimator.dataset.sigmas),
            nms_thr,
            boxes=result.boxes,
            input_size=processor.input_size,
            padding=processor.padding_factor,
        )
        return None if len(keep) == len(result) else keep

    def _track_one(self, frame: Frame, result: PoseResult, detected: bool, known_ids: np.ndarray | None) -> FrameResult:
        ids = self.tracker.update(result.boxes, result.keypoints, result.keypoint_scores, known_ids=known_ids)
        changes: dict[str, Any] = {}
        if frame.file_name is not None:
            changes["file_name"] = frame.file_name
        if self.smooth and len(result):
            tracks = {t.track_id: t for t in self.tracker.tracks}
            smoothed = np.empty_like(result.keypoints)
            for i, track_id in enumerate(ids):
                track = tracks[int(track_id)]
                if track.smoother is None:
                    track.smoother = OneEuroFilter(**self.smoothing)
                smoothed[i] = track.smoother(result.keypoints[i], frame.timestamp)
            changes["keypoints"] = smoothed
            changes["extra"] = {**result.extra, "raw_keypoints": result.keypoints}
        return FrameResult(
            index=frame.index,
            timestamp=frame.timestamp,
            result=dataclasses.replace(result, **changes) if changes else result,
            track_ids=ids,
            detected=detected,
            image=frame.image if self.keep_images else None,
            file_name=frame.file_name,
        )


class TrackedVideo(Iterator[FrameResult]):
    """An iterator over the `FrameResult`s of one source (what `track_video` returns).

    Attributes:
        source: the `VideoSource` (fps, frame_count, size, stop_reason).
        tracker: the `VideoPoseTracker` (its `tracker.tracks`, `detector_frames`, ...).

    Closing it (`close()`, the end of a `with` block, or the end of the frames) releases the source.
    """

    def __init__(self, source: VideoSource, tracker: VideoPoseTracker, max_frames: int | None = None) -> None:
        self.source = source
        self.tracker = tracker
        self.max_frames = max_frames
        frames: Iterable[Frame] = source if max_frames is None else itertools.islice(source, max_frames)
        # Frames are decoded on a thread of their own, a couple of batches ahead of the tracker (a camera's are
        # taken as they come: no latency added).
        self._frames = (
            None
            if isinstance(source, CameraSource)
            else background(frames, maxsize=2 * tracker.frame_batch, name="frames")
        )
        self._results = tracker.track(frames if self._frames is None else self._frames)

    @property
    def frame_count(self) -> int | None:
        """Frames this run will yield where known (the source's count, capped by `max_frames`)."""
        count = self.source.frame_count
        if self.max_frames is None:
            return count
        return self.max_frames if count is None else min(count, self.max_frames)

    def __iter__(self) -> TrackedVideo:
        return self

    def __next__(self) -> FrameResult:
        try:
            return next(self._results)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop: release the source (after the thread that reads it has stopped)."""
        self._results.close()
        if self._frames is not None:
            self._frames.close()
        self.source.close()

    def __enter__(self) -> TrackedVideo:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def track_video(
    estimator: Any,
    source: Any,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    **options: Any,
) -> TrackedVideo:
    """Track the poses of a video, an image sequence, a camera or arrays, one `FrameResult` per frame.

    Args:
        estimator: a `vitpose.PoseEstimator`.
        source: what `open_video` takes: a video file, a folder or glob of images, a camera index, a
            `VideoSource`, or an iterable of RGB uint8 (H, W, 3) arrays.
        fps: frame rate for image sequences and arrays (30 by default); overrides a file's or camera's.
        max_frames: stop after this many frames.
        options: `VideoPoseTracker` options: det_every, max_age, kpt_thr, box_scale, smooth, min_cutoff, beta,
            d_cutoff, frame_batch (default 8, 1 for cameras), iou_weight, min_similarity, keep_images.

    Returns:
        a `TrackedVideo`: iterate it for the frames' results (it streams: frames are read, processed `frame_batch`
        at a time and yielded as they come). Use it in a `with` block, or `close()` it, to stop early.

    Raises:
        FileNotFoundError / ValueError / OSError: the source cannot be opened (raised here, before any frame).
    """
    if max_frames is not None and int(max_frames) < 1:
        raise VitPoseError(f"max_frames must be >= 1, got {max_frames}")
    video = open_video(source, fps)
    try:
        if isinstance(video, CameraSource):
            options.setdefault("frame_batch", 1)  # a camera: no latency from batching
        tracker = VideoPoseTracker(estimator, **options)
    except BaseException:
        video.close()
        raise
    return TrackedVideo(video, tracker, None if max_frames is None else int(max_frames))


@dataclass
class VideoSummary:
    """What `process_video` did.

    Attributes:
        frames: frames processed and written.
        poses: poses over all frames.
        tracks: track ids given out.
        detector_frames: frames the detector ran on.
        last_frame: index of the last frame written (None when none was).
        interrupted: stopped by Ctrl-C (KeyboardInterrupt); the files hold the frames up to `last_frame`.
        stop_reason: why the input ended early (a truncated file, ...), else None.
        warnings: other problems with the input (skipped images).
        out, jsonl: the files written (None where not asked for).
        seconds: wall-clock time.
    """

    frames: int = 0
    poses: int = 0
    tracks: int = 0
    detector_frames: int = 0
    last_frame: int | None = None
    interrupted: bool = False
    stop_reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    out: Path | None = None
    jsonl: Path | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        files = " and ".join(str(p) for p in (self.out, self.jsonl) if p is not None) or "nothing written"
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self.frames} frames ({rate:.1f} frames/s), {self.poses} poses, {self.tracks} tracks, detector on "
            f"{self.detector_frames} frames -> {files}"
        )


def _no_frames(source: VideoSource, summary: VideoSummary) -> None:
    """A source that gave no frame at all (and raised nothing): the error names the input and why. No empty JSON
    Lines file is left behind (`process_video` removes it): it would read as a video without people."""
    problems = [summary.stop_reason] if summary.stop_reason else []
    problems += summary.warnings[: 3 - len(problems)]
    why = f" ({'; '.join(problems)})" if problems else " (the video holds no frames)"
    raise VitPoseError(
        f"{source.name}: no frame could be read{why}: nothing was written; check that the input is a video (or "
        "images) that OpenCV can decode"
    )


def process_video(
    estimator: Any,
    source: Any,
    out: str | os.PathLike[str] | None = None,
    jsonl: str | os.PathLike[str] | None = None,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    kpt_thr: float = 0.3,
    progress: bool = True,
    **options: Any,
) -> VideoSummary:
    """Track a video and write the annotated video and/or the JSON Lines results, streaming.

    Each frame is written as soon as its batch is done; memory does not grow with the video's length. Neither file
    may be the input (`vitpose.errors.OutputError`, before anything is written). Ctrl-C (KeyboardInterrupt; the
    command line makes SIGTERM one too) stops the run: the files are closed cleanly (the video playable, the JSON
    Lines made of complete lines) and the summary says so (`interrupted`, `last_frame`). A source that ends early (a
    truncated file) gives `stop_reason`; the frames read before are all processed and written.

    Args:
        estimator: a `vitpose.PoseEstimator`.
        source: see `track_video`.
        out: annotated video (suffix .mp4, .m4v, .mov, .mkv: mp4v; .avi: MJPG; .webm: VP8), at the source's frame
            rate and size; None for none.
        jsonl: per-frame results (one `FrameResult.to_dict()` per line); None for none.
        fps, max_frames: see `track_video`.
        kpt_thr: keypoint score threshold, for drawing and for the tracker (see `VideoPoseTracker`).
        progress: a tqdm progress bar (frames, frames/s) on stderr.
        options: `VideoPoseTracker` options.

    Raises:
        ValueError: neither `out` nor `jsonl`, an unsupported video suffix, a source that cannot be read, or one
            that gives no frame at all (a `VitPoseError` naming it; no empty JSON Lines file is left).
        OSError: a file that cannot be written (the codec missing from OpenCV's build).
    """
    if out is None and jsonl is None:
        raise VitPoseError("nothing to write: give out= (an annotated video) and/or jsonl= (per-frame results)")
    if out is not None:
        writer_codec(out)  # an unsupported suffix fails before any work
    start = time.monotonic()
    summary = VideoSummary(out=None if out is None else Path(out), jsonl=None if jsonl is None else Path(jsonl))
    video = track_video(estimator, source, fps=fps, max_frames=max_frames, kpt_thr=kpt_thr, **options)
    video_writer = None
    lines = None
    bar = None
    try:
        check_outputs(video.source, out, jsonl)  # neither replaces the input, nor the other
        if out is not None:
            video_writer = VideoWriter(out, video.source.fps)  # the size of the frames as decoded
        if jsonl is not None:
            lines = JsonlWriter(jsonl)
        bar = progress_bar(
            total=video.frame_count, unit="frame", file=sys.stderr, disable=not progress, dynamic_ncols=True
        )

        def draw(frame: FrameResult) -> tuple[FrameResult, np.ndarray | None]:
            return frame, frame.draw(kpt_thr=kpt_thr) if video_writer is not None else None

        # Tracking runs on a thread of its own and drawing on the I/O pool, a few frames ahead; the frames are
        # encoded and written here, in order.
        stages = background(ordered_map(draw, video, window=4, pool=io_pool()), maxsize=4, name="video")
        try:
            for frame, drawn in stages:
                with protected():  # under the command line, a signal waits until the frame is in both files
                    if video_writer is not None:
                        video_writer.write(drawn)
                    if lines is not None:
                        lines.write(frame.to_dict())
                    summary.frames += 1
                    summary.poses += len(frame)
                    summary.last_frame = frame.index
                bar.update(1)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            stages.close()  # the tracking thread stops (after its batch) before the source is released
    finally:
        video.close()
        if bar is not None:
            bar.close()
        if video_writer is not None:
            video_writer.close()
        if lines is not None:
            lines.close()
            if summary.frames == 0 and not summary.interrupted and lines.lines_written == 0:
                # no frame at all (the source ended or failed before one): no empty file that reads as "nobody"
                with contextlib.suppress(OSError):
                    lines.path.unlink(missing_ok=True)
    summary.stop_reason = video.source.stop_reason
    summary.warnings = [p for p in video.source.problems if p != summary.stop_reason]
    if summary.frames == 0 and not summary.interrupted:
        _no_frames(video.source, summary)
    summary.tracks = video.tracker.tracker.next_id - 1
    summary.detector_frames = video.tracker.detector_frames
    summary.seconds = time.monotonic() - start
    return summary
