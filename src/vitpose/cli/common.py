"""What every `vitpose` subcommand shares: the option groups (defined once, same names and help texts everywhere),
the argument types, and the one error handler (`run`).

Options: `add_model_options` (--model, --device, --dtype, --batch-size, --flip-test, --dataset), `add_dtype_option`
(--dtype alone), `add_detector_options` (--detector), `add_threshold_options` (--det-thr, --kpt-thr, --nms-thr /
--no-nms). Each takes the defaults of its command; `argparse.SUPPRESS` as a default leaves the attribute unset (what
`vitpose train` does, so that a --config file fills in what the command line does not give).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from vitpose.datasets import DatasetInfo, parse_dataset
from vitpose.device import dtype_choices
from vitpose.errors import VitPoseError

__all__ = [
    "DEFAULT_MODEL",
    "DETECTORS",
    "INTERRUPTED",
    "add_detector_options",
    "add_dtype_option",
    "add_engine_options",
    "add_model_files",
    "add_model_options",
    "add_threshold_options",
    "dataset_arg",
    "estimator_from_args",
    "network_dtype",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "run",
    "worker_cpus",
]

DEFAULT_MODEL = "usyd-community/vitpose-base-simple"
INTERRUPTED = 130  # the exit code of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report Ctrl-C)
DETECTORS = ("auto", "rtdetr", "hog", "full-image")  # vitpose.detectors.DETECTOR_NAMES, without importing torch
DATASET_HELP = (
    "data set: coco, aic, mpii, ap10k, apt36k, wholebody, an index 0-5, or a custom data set JSON file (keypoints, "
    "skeleton, flip_pairs, sigmas); ViTPose++: the expert and head to use"
)
DTYPE_HELP = (
    f"numeric precision of the network: {dtype_choices()}; auto = float16 on CUDA (ViTPose's own mixed-precision "
    "setting), float32 on the CPU and MPS; float16 and bfloat16 are for GPUs (on a CPU they run, slowly)"
)
TRAIN_DTYPE_HELP = (
    "not an option of training (train, distill): it keeps float32 weights, and its precision is --amp (mixed "
    "precision: auto, fp16, bf16, off)"
)
_SUPPRESS = argparse.SUPPRESS


# ---------------------------------------------------------------------------------------------- argument types
def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0."""
    value = _float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def dataset_arg(text: str) -> str | int | DatasetInfo:
    """argparse type of --dataset (and `convert --fold`): `vitpose.datasets.parse_dataset`, its error as argparse's."""
    try:
        return parse_dataset(text)
    except VitPoseError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _default(value: Any, text: str | None = None) -> str:
    """' (VALUE)' for the help text, or nothing where the default is suppressed (it comes from elsewhere)."""
    if value is _SUPPRESS:
        return f" ({text})" if text else ""
    return f" ({text if text is not None else value})"


# ---------------------------------------------------------------------------------------------- option groups
def add_model_options(
    parser: argparse.ArgumentParser,
    *,
    model: Any = DEFAULT_MODEL,
    model_required: bool = False,
    model_flag: str = "--model",
    model_note: str = "",
    presets: bool = False,
    device: Any = "auto",
    dtype: Any = "auto",
    dtype_note: str = "",
    batch_size: Any = 32,
    batch_help: str = "person crops per network batch",
    flip_test: Any = False,
    flip_use: str = "",
    dataset: bool = True,
    dataset_note: str = "",
    dataset_type: Any = None,
    **dataset_kwargs: Any,
) -> None:
    """--model, --device, --dtype, --batch-size, --flip-test and --dataset; None (False for --dataset) leaves one out.

    `model`, `device`, `dtype`, `batch_size`, `flip_test`: the defaults (SUPPRESS: unset unless given; None for
    --model: unset, the command knows its default). `model_flag`: the option's name (dest `model` whatever it is:
    `vitpose distill --student`); `model_note`: prepended to its help. `presets`: --model also takes a preset name,
    for training: there --dtype is refused with a pointer to --amp (`add_dtype_option`). `dtype_note`: appended to
    the help of --dtype. `flip_use`: where the flip test applies, when not everywhere. `dataset_note`: appended to
    the help of --dataset. `dataset_type`: instead of `dataset_arg`, a type built on it. `dataset_kwargs`: more
    argparse settings of --dataset (dest, nargs, metavar, default).
    """
    model_help = model_note + "checkpoint: hub id, hub-format directory or original ViTPose .pth"
    if presets:
        model_help += (
            "; or a preset to train from scratch: tiny, small, base, large, huge (+ for ViTPose++, e.g. base+)"
        )
    if model_required:
        parser.add_argument(model_flag, dest="model", required=True, help=model_help)
    else:
        shown = DEFAULT_MODEL if model is None else model
        parser.add_argument(model_flag, dest="model", default=model, help=model_help + _default(shown))
    if device is not None:
        parser.add_argument(
            "--device", default=device, help="auto, cpu, cuda, cuda:N or mps" + _default(device, "auto")
        )
    if presets:
        add_dtype_option(parser, training=True)
    elif dtype is not None:
        add_dtype_option(parser, default=dtype, note=dtype_note)
    if batch_size is not None:
        parser.add_argument(
            "--batch-size", type=positive_int, default=batch_size, help=batch_help + _default(batch_size)
        )
    if flip_test is not None:
        parser.add_argument(
            "--flip-test",
            action="store_true",
            default=flip_test,
            help=f"{flip_use}average with the mirrored crop, as the papers report (slower, better)",
        )
    if dataset:
        parser.add_argument(
            "--dataset", type=dataset_type or dataset_arg, help=DATASET_HELP + dataset_note, **dataset_kwargs
        )


def add_dtype_option(
    parser: argparse.ArgumentParser, *, default: Any = "auto", note: str = "", training: bool = False
) -> None:
    """--dtype: the network's precision (`vitpose.device.DTYPES`), checked by `vitpose.device.resolve_dtype` when the
    model loads (a bad name is then one line naming the choices). `note`: appended to the help (what the command
    does with it). `training`: an option that only refuses, never set (training's precision is --amp)."""
    if training:
        parser.add_argument(
            "--dtype", action=_NotForTraining, nargs="?", default=_SUPPRESS, metavar="DTYPE", help=TRAIN_DTYPE_HELP
        )
        return
    parser.add_argument("--dtype", default=default, metavar="DTYPE", help=DTYPE_HELP + note + _default(default))


class _NotForTraining(argparse.Action):
    """`vitpose train --dtype`: refused, naming --amp."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        raise argparse.ArgumentError(
            self, "training keeps float32 weights; its precision is --amp (auto, fp16, bf16, off): drop --dtype"
        )


def add_detector_options(parser: argparse.ArgumentParser) -> None:
    """--detector: the person detector of predict and video."""
    parser.add_argument(
        "--detector",
        default="auto",
        choices=list(DETECTORS),
        help="person detector (auto): auto = RT-DETR where installed and its weights are available, else HOG; "
        "rtdetr; hog (OpenCV, no weights, weak); full-image = each whole image is one person",
    )


def add_threshold_options(
    parser: argparse.ArgumentParser,
    *,
    det_thr: float | None = 0.3,
    kpt_thr: float | None = 0.3,
    kpt_note: str = "",
    nms_thr: float | None = 0.9,
) -> None:
    """--det-thr, --kpt-thr, --nms-thr and --no-nms (None: leave that option out). `kpt_note`: appended to the help
    of --kpt-thr (what else the command uses it for)."""
    if det_thr is not None:
        parser.add_argument(
            "--det-thr",
            type=float,
            default=det_thr,
            help="person-box score threshold: boxes of the detector, or of a --boxes / --detections file, scored "
            f"below it are dropped ({det_thr})",
        )
    if kpt_thr is not None:
        parser.add_argument(
            "--kpt-thr",
            type=float,
            default=kpt_thr,
            help=f"keypoint score threshold: keypoints scored at or below it are not drawn{kpt_note} ({kpt_thr})",
        )
    if nms_thr is not None:
        parser.add_argument(
            "--nms-thr", type=float, default=nms_thr, help=f"OKS-NMS threshold over the detected people ({nms_thr})"
        )
        parser.add_argument("--no-nms", action="store_true", help="no OKS-NMS: keep every detected person")


ENGINES = ("local", "ray")
WORKER_CPUS, WORKER_CPUS_WITH_GPU = 0.5, 1.0
"""Ray CPUs per actor or replica unless --num-cpus says: half a CPU leaves room to Ray's own tasks on a small
machine (whole CPUs for every actor can starve them and hang a job); one CPU to feed a GPU."""


def worker_cpus(args: argparse.Namespace) -> float:
    """--num-cpus, else `WORKER_CPUS` (`WORKER_CPUS_WITH_GPU` with --num-gpus)."""
    if args.num_cpus is not None:
        return args.num_cpus
    return WORKER_CPUS_WITH_GPU if args.num_gpus else WORKER_CPUS


def add_engine_options(parser: argparse.ArgumentParser, *, workers: str = "actors") -> None:
    """--engine, --address, --actors (`workers="replicas"`: --replicas), --num-cpus, --num-gpus: where the work runs.

    `local` (the default) is this process and needs no Ray; `ray` runs the pose network on Ray actors (Ray Data for
    predict and eval, Ray Serve replicas for serve), on a local Ray or on the cluster at --address."""
    what = "service replicas" if workers == "replicas" else "pose actors"
    parser.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="local",
        help='where to run: local (this process) or ray (a Ray cluster; needs: pip install "vitpose[ray]") (local)',
    )
    parser.add_argument(
        "--address",
        help="--engine ray: the cluster to run on (auto: the one this machine joined with `ray start`; HOST:PORT of "
        "its head; ray://HOST:10001); default: start a local Ray on this machine, on 127.0.0.1 only",
    )
    parser.add_argument(f"--{workers}", type=positive_int, default=1, help=f"--engine ray: the number of {what} (1)")
    parser.add_argument(
        "--num-cpus",
        type=positive_float,
        default=None,
        help=f"--engine ray: CPUs per one of the {what}, fractions allowed (default: {WORKER_CPUS}; with "
        f"--num-gpus, {WORKER_CPUS_WITH_GPU})",
    )
    parser.add_argument(
        "--num-gpus",
        type=non_negative_float,
        default=0.0,
        help=f"--engine ray: GPUs per one of the {what}, fractions allowed (0.25: four share a GPU) (0)",
    )


def estimator_from_args(args: argparse.Namespace, detector: Any = None) -> Any:
    """The `PoseEstimator` of the model, detector and threshold options (`detector`: instead of --detector)."""
    from vitpose.inference.estimator import PoseEstimator

    return PoseEstimator.from_pretrained(
        args.model,
        device=args.device,
        dtype=args.dtype,
        flip_test=args.flip_test,
        dataset=args.dataset,
        batch_size=args.batch_size,
        nms_thr=None if args.no_nms else args.nms_thr,
        detector=args.detector if detector is None else detector,
        det_thr=args.det_thr,
    )


def network_dtype(args: argparse.Namespace) -> Any:
    """The `torch.dtype` of --dtype where the network runs: on --device here; with --engine ray, on the actors or
    replicas (a GPU with --num-gpus). For the settings a --resume checks: `auto` differs from device to device."""
    from vitpose.device import resolve_device, resolve_dtype

    if getattr(args, "engine", "local") == "ray":
        return resolve_dtype(args.dtype, "cuda" if args.num_gpus else "cpu")
    return resolve_dtype(args.dtype, resolve_device(args.device))


# ---------------------------------------------------------------------------------------------- outputs
def add_model_files(inputs: Any, model: Any, what: str = "the --model checkpoint") -> None:
    """Add a local checkpoint (a file, or the files of a folder) to `inputs` (a `vitpose.outputs.InputFiles`); a hub
    id adds nothing."""
    from vitpose.outputs import files_of

    if isinstance(model, str | os.PathLike):
        for path in files_of(model):
            inputs.add(what, path)


# ---------------------------------------------------------------------------------------------- error handler
def run_alone(add_parser: Any, description: str, argv: Any = None) -> int:
    """One sub-command outside the `vitpose` entry point (`python -m vitpose.cli.train train ...`, the form to give
    `torchrun -m`): a parser with only it, run by `run`."""
    parser = argparse.ArgumentParser(prog="vitpose", description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run a parsed command (`args.func(args)`, `args.command` its name): its exit code.

    Ctrl-C (SIGINT) and SIGTERM raise `KeyboardInterrupt` while the command runs (`vitpose.outputs.stop_signals`;
    held while a result is being written, `vitpose.outputs.protected`); a command that streams results catches it,
    keeps what it finished and returns `INTERRUPTED` (130); elsewhere it ends the command with one line and 130.
    What the user can fix is one line on stderr, `vitpose CMD: error: MESSAGE`, and exit code 2: every such error
    derives from `VitPoseError`, files add `OSError`. Anything else is a bug and keeps its traceback. Warnings are
    shown as one plain line each, `vitpose CMD: warning: ...` (once per place, even where this process warned
    before); the caller's warning filters and display are restored afterwards.
    """
    import warnings

    from vitpose.outputs import stop_signals

    with warnings.catch_warnings(), stop_signals() as interruption:
        warnings.simplefilter("default")
        warnings.showwarning = _plain_warning(args.command)
        try:
            return args.func(args)
        except (VitPoseError, OSError) as err:
            message = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or repr(err)
            print(f"vitpose {args.command}: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # a command that streams results catches it itself and says what it kept
            print(f"vitpose {args.command}: interrupted ({interruption.signal or 'Ctrl-C'})", file=sys.stderr)
            return INTERRUPTED


def _plain_warning(command: str) -> Any:
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from tqdm import tqdm

        tqdm.write(f"vitpose {command}: warning: {message}", file=sys.stderr)  # above any progress bar

    return show
