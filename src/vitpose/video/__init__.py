"""Pose estimation over video: reading, tracking, smoothing and writing, streaming with bounded memory.

    from vitpose import PoseEstimator
    from vitpose.video import track_video, process_video

    estimator = PoseEstimator.from_pretrained("usyd-community/vitpose-base-simple")
    for frame in track_video(estimator, "walk.mp4", det_every=5, smooth=True):
        print(frame.index, frame.timestamp, frame.track_ids, frame.result.keypoints.shape)

    summary = process_video(estimator, "walk.mp4", out="walk_pose.mp4", jsonl="walk_pose.jsonl")

- `track_video` / `VideoPoseTracker`: per-frame `FrameResult`s (index, timestamp, `PoseResult`, track ids).
- `process_video`: the annotated video and JSON Lines, with a progress bar; Ctrl-C closes the files cleanly.
- `PoseTracker`: track ids by box IoU + keypoint OKS and an exact assignment (`linear_assignment`).
- `OneEuroFilter`: the keypoint smoother.
- `open_video`, `VideoWriter`, `JsonlWriter`: the sources and writers.
"""

from vitpose.video.io import (
    ArraySource,
    CameraSource,
    Frame,
    ImageSequenceSource,
    JsonlWriter,
    VideoFileSource,
    VideoReadWarning,
    VideoSource,
    VideoWriter,
    open_video,
)
from vitpose.video.runner import (
    FrameResult,
    TrackedVideo,
    VideoPoseTracker,
    VideoSummary,
    boxes_from_keypoints,
    process_video,
    track_video,
)
from vitpose.video.smoothing import OneEuroFilter
from vitpose.video.tracking import PoseTracker, Track, box_iou_matrix, linear_assignment

__all__ = [
    "ArraySource",
    "CameraSource",
    "Frame",
    "FrameResult",
    "ImageSequenceSource",
    "JsonlWriter",
    "OneEuroFilter",
    "PoseTracker",
    "Track",
    "TrackedVideo",
    "VideoFileSource",
    "VideoPoseTracker",
    "VideoReadWarning",
    "VideoSource",
    "VideoSummary",
    "VideoWriter",
    "box_iou_matrix",
    "boxes_from_keypoints",
    "linear_assignment",
    "open_video",
    "process_video",
    "track_video",
]
