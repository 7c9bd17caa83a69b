"""`vitpose video`: pose tracking over a video file, an image sequence or a camera; argument parsing only.

`vitpose.cli` registers it with `add_parser(subparsers)`; the work is `vitpose.video.process_video`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vitpose.cli.common import (
    add_detector_options,
    add_model_options,
    add_threshold_options,
    estimator_from_args,
    non_negative_int,
    positive_float,
    positive_int,
)
from vitpose.errors import VitPoseError
from vitpose.outputs import stop_signal

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register the `video` subcommand (its options and its handler, `run`) on an argparse subparsers object."""
    video = subparsers.add_parser(
        "video",
        help="track poses through a video, image sequence or camera; write an annotated video and JSON Lines",
        description="Top-down pose estimation over every frame, with a stable track id per person, optional "
        "smoothing and the detector run every N frames only. Writes the annotated video (--out, at the input's "
        "frame rate and size) and one JSON line per frame (--jsonl; by default --out with the suffix .jsonl). "
        "Ctrl-C or SIGTERM stops and closes both files cleanly; neither may be the input. Exit code 0, 1 when the "
        "input ended early (a truncated file: the frames read are written), 2 on an error, 130 when interrupted.",
    )
    video.add_argument(
        "input",
        metavar="INPUT",
        help="video file (.mp4, .avi, .mov, .mkv, .webm, ...), folder or glob pattern of images, or a camera index "
        "such as 0",
    )
    video.add_argument("--out", help="annotated video to write: .mp4, .m4v, .mov, .mkv (mp4v), .avi (MJPG), .webm")
    video.add_argument("--jsonl", help="per-frame results as JSON Lines (default: --out with the suffix .jsonl)")
    add_model_options(video)
    add_detector_options(video)
    add_threshold_options(
        video, kpt_note="; nor used for the boxes between detector frames (--det-every) and the tracking OKS"
    )
    video.add_argument(
        "--frame-batch", type=positive_int, default=None, help="frames processed together (8; 1 for a camera)"
    )
    video.add_argument(
        "--det-every",
        type=positive_int,
        default=1,
        metavar="N",
        help="run the detector every N frames; between, boxes come from the previous frame's keypoints (1)",
    )
    video.add_argument(
        "--max-age",
        type=non_negative_int,
        default=30,
        help="frames a person may go unseen and keep the same track id (30)",
    )
    video.add_argument("--smooth", action="store_true", help="One Euro filter on each track's keypoints")
    video.add_argument(
        "--smooth-min-cutoff", type=positive_float, default=1.0, help="One Euro min cut-off, Hz (1.0; lower: smoother)"
    )
    video.add_argument(
        "--smooth-beta", type=float, default=0.007, help="One Euro speed coefficient, 1/px (0.007; higher: less lag)"
    )
    video.add_argument(
        "--smooth-d-cutoff", type=positive_float, default=1.0, help="One Euro cut-off of the speed, Hz (1.0)"
    )
    video.add_argument(
        "--fps", type=positive_float, help="frame rate of an image sequence (30); overrides a video's own"
    )
    video.add_argument("--max-frames", type=positive_int, help="stop after this many frames")
    video.add_argument("--no-progress", action="store_true", help="no progress bar")
    video.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The handler of `vitpose video`: returns the exit code; raises VitPoseError/OSError on bad input or output."""
    import warnings

    from vitpose.video import VideoReadWarning, open_video, process_video
    from vitpose.video.io import check_outputs, writer_codec

    if args.out is None and args.jsonl is None:
        raise VitPoseError(
            "nothing to write: give --out VIDEO (annotated video) and/or --jsonl FILE (per-frame results)"
        )
    if args.out is not None:
        writer_codec(args.out)
    jsonl = args.jsonl
    if jsonl is None:
        jsonl = str(Path(args.out).with_suffix(".jsonl"))
    check_outputs(args.input, args.out, jsonl)  # before the model loads and anything is opened for writing
    options: dict[str, Any] = {}
    if args.frame_batch is not None:
        options["frame_batch"] = args.frame_batch

    with warnings.catch_warnings():
        # Problems with the input are reported once, at the end, from the summary.
        warnings.simplefilter("ignore", VideoReadWarning)
        source = open_video(args.input, args.fps)  # a bad input fails before the model loads
        try:
            estimator = estimator_from_args(args)
        except BaseException:
            source.close()
            raise
        summary = process_video(
            estimator,
            source,
            out=args.out,
            jsonl=jsonl,
            max_frames=args.max_frames,
            kpt_thr=args.kpt_thr,
            progress=not args.no_progress,
            det_every=args.det_every,
            max_age=args.max_age,
            smooth=args.smooth,
            min_cutoff=args.smooth_min_cutoff,
            beta=args.smooth_beta,
            d_cutoff=args.smooth_d_cutoff,
            **options,
        )
    print(summary)
    for message in summary.warnings:
        print(f"vitpose video: warning: {message}", file=sys.stderr)
    if summary.interrupted:
        where = "no frame was written" if summary.last_frame is None else f"the files end at frame {summary.last_frame}"
        print(f"vitpose video: interrupted ({stop_signal()}) after {summary.frames} frames: {where}", file=sys.stderr)
        return 130
    if summary.stop_reason is not None:
        print(f"vitpose video: warning: {summary.stop_reason}", file=sys.stderr)
        return 1
    return 0
