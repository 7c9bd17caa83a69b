"""`vitpose train`: thin argument parsing over `vitpose.training.train`.

`add_parser(subparsers)` registers the sub-command on the `vitpose` parser; `python -m vitpose.cli.train train ...`
runs it alone (the form to give `torchrun -m`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from vitpose.cli.common import add_model_options, dataset_arg, run_alone
from vitpose.errors import OutputError, VitPoseError

__all__ = ["add_parser", "add_training_options", "check_out", "config_from_args", "main", "run_summary", "run_train"]

_DESCRIPTION = """\
Train or fine-tune with the original ViTPose recipe: AdamW with layer-wise lr decay, warm-up and step
decay, gradient clipping, flip / half-body / scale / rotation augmentation, UDP heatmap targets.

Writes OUT/last (hub-format model + optimiser state, for --resume), OUT/best (best validation AP),
OUT/log.csv and OUT/training.png. Settings can also come from a JSON file (--config) with the same
names (train_annotations, batch_size, ...); flags given on the command line win.
"""

_EPILOG = """\
examples:
  fine-tune a hub checkpoint on your own COCO-format data, evaluating every 5 epochs:
    vitpose train --model usyd-community/vitpose-base-simple --train-annotations train.json --train-images imgs/ \\
        --val-annotations val.json --val-images imgs/ --epochs 50 --batch-size 32 --lr 1e-4 --eval-interval 5 \\
        --out runs/ft
  a custom skeleton (keypoint names, skeleton, flip pairs, sigmas in a JSON file); the head is replaced:
    vitpose train --model usyd-community/vitpose-base-simple --dataset my_animal.json ... --out runs/animal
  from scratch, a tiny model at 128x96:
    vitpose train --model tiny --decoder simple --input-size 128x96 ... --out runs/tiny
  continue an interrupted run (Ctrl-C stops cleanly after the current step):
    vitpose train --config runs/ft/train_config.json --resume
  two GPUs (or two CPU processes with gloo):
    torchrun --standalone --nproc_per_node 2 -m vitpose.cli.train train --model ... --out runs/ddp
"""


def _input_size(text: str) -> list[int]:
    """--input-size HEIGHTxWIDTH -> [width, height], the order of input_size in the Python API."""
    from vitpose.config import parse_input_size

    try:
        width, height = parse_input_size(text, "--input-size")
    except VitPoseError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if min(width, height) < 16:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 256x192, each >= 16, got {text!r}")
    return [width, height]


def _dataset(text: str) -> Any:
    """--dataset / --val-dataset: read as everywhere (`dataset_arg`), but a custom data set stays its file's path, so
    that the train_config.json written for --resume names the file."""
    value = dataset_arg(text)
    return value if isinstance(value, str | int) else text


def add_parser(subparsers: Any) -> None:
    """Register `vitpose train` on the sub-parsers of the `vitpose` command line."""
    p = subparsers.add_parser(
        "train",
        help="train or fine-tune a ViTPose / ViTPose++ model on COCO-format keypoint data",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_training_options(p)
    p.set_defaults(func=run_train)


def add_training_options(p: argparse.ArgumentParser, *, model_flag: str = "--model", model_note: str = "") -> None:
    """The options of `vitpose train` (the model, the data, the recipe, --out, --resume, --config), every one unset
    unless given (the settings' defaults apply); `vitpose distill` has them too, with --student for --model."""
    S = argparse.SUPPRESS
    p.add_argument("--config", metavar="FILE", help="JSON file with the settings (same names as the flags)")
    add_model_options(
        p, model=S, model_flag=model_flag, model_note=model_note, presets=True, device=S, batch_size=S,
        batch_help="global batch size over all processes (64)", flip_test=S, flip_use="validation: ",
        dataset_type=_dataset, dest="datasets", nargs="+", metavar="D", default=S,
        dataset_note="; one per training file (default: inferred from the file)",
    )  # fmt: skip
    p.add_argument("--train-annotations", nargs="+", metavar="FILE", default=S, help="COCO-format keypoint file(s)")
    p.add_argument("--train-images", nargs="+", metavar="DIR", default=S, help="image folder(s), one per file")
    p.add_argument("--val-annotations", nargs="+", metavar="FILE", default=S, help="validation keypoint file(s)")
    p.add_argument("--val-images", nargs="+", metavar="DIR", default=S, help="validation image folder(s)")
    p.add_argument("--val-dataset", dest="val_datasets", nargs="+", metavar="D", default=S, type=_dataset,
                   help="validation data set(s) (default: the training ones, in order)")  # fmt: skip
    p.add_argument("--out", default=S, help="output folder")
    p.add_argument("--epochs", type=int, default=S, help="epochs (210)")
    p.add_argument("--lr", type=float, default=S, help="base learning rate (5e-4; 1e-3 for ViTPose++)")
    p.add_argument("--weight-decay", type=float, default=S, help="AdamW weight decay (0.1)")
    p.add_argument(
        "--layer-decay", type=float, default=S, help="layer-wise lr decay (per size: B 0.75, S/L 0.8, H 0.85)"
    )
    p.add_argument("--warmup-iters", type=int, default=S, help="linear warm-up iterations (500)")
    p.add_argument("--lr-steps", type=int, nargs="*", metavar="EPOCH", default=S,
                   help="epochs at which the lr drops x0.1 (170/210, 200/210 of --epochs; none: no decay)")  # fmt: skip
    p.add_argument("--grad-clip", type=float, default=S, help="gradient norm clip (1.0; 0 = off)")
    p.add_argument("--input-size", type=_input_size, default=S, metavar="HxW",
                   help="network input, e.g. 256x192 (default: the checkpoint's)")  # fmt: skip
    p.add_argument("--decoder", choices=["simple", "classic"], default=S, help="presets: the head (classic)")
    p.add_argument("--drop-path", type=float, default=S, help="stochastic depth rate (default: the checkpoint's)")
    p.add_argument("--no-augment", dest="augment", action="store_false", default=S,
                   help="train on the plain crops (no flip, half-body, scale or rotation)")  # fmt: skip
    p.add_argument("--amp", choices=["auto", "fp16", "bf16", "off"], default=S,
                   help="mixed precision: auto = fp16 on CUDA, off elsewhere")  # fmt: skip
    p.add_argument("--seed", type=int, default=S, help="seed of the initialisation, data order and augmentation (0)")
    p.add_argument("--workers", dest="num_workers", type=int, default=S, help="data-loader processes (2)")
    p.add_argument("--eval-interval", type=int, default=S, help="evaluate every N epochs (1; 0 = at the end only)")
    p.add_argument(
        "--checkpoint-interval", type=int, default=S, help="write last/, the log and the plot every N epochs (1)"
    )
    p.add_argument("--save-interval", type=int, default=S, help="also write last/ every N steps (0 = off)")
    p.add_argument("--resume", action="store_true", default=S, help="continue from OUT/last")
    p.add_argument("--quiet", dest="progress", action="store_false", default=S, help="no progress bars")


def config_from_args(args: argparse.Namespace, kind: Any = None, flags: dict[str, str] | None = None) -> Any:
    """The settings of parsed arguments (`kind`: `TrainConfig` by default; `DistillConfig` for distill): the
    --config file's, overridden by the flags given. `flags` names the options of required settings whose flag is
    not `--name` (distill: model -> --student)."""
    from vitpose.training import TrainConfig

    kind = kind or TrainConfig
    given = {k: v for k, v in vars(args).items() if k not in ("config", "func", "command")}
    if getattr(args, "config", None):
        return kind.from_json_file(args.config, **given)
    flags = flags or {}
    missing = [
        flags.get(k, f"--{k.replace('_', '-')}")
        for k in ("model", "train_annotations", "train_images", "out")
        if k not in given
    ]
    if missing:
        raise VitPoseError(f"missing {', '.join(missing)} (or give them in a --config file)")
    return kind(**given)


def check_out(
    config: Any,
    config_file: str | None,
    *,
    own_config: str = "train_config.json",
    models: Sequence[tuple[str, Any]] = (),
    files: Sequence[str] = (),
    folders: Sequence[str] = (),
) -> None:
    """Refuse an --out whose files (`own_config`, log.csv, training.png, last/, best/, and `files` / `folders` of
    the command) would replace an input: the annotations, the --model checkpoint (--resume reads OUT/last instead)
    and the other checkpoints or files in `models` ((what, path) pairs: distill's --teacher and --token), the
    --config file (except OUT/`own_config`, the run's own, which --resume reads)."""
    from pathlib import Path

    from vitpose.cli.common import add_model_files
    from vitpose.outputs import InputFiles

    out = Path(config.out)
    inputs = InputFiles()
    for option in ("train_annotations", "val_annotations"):
        for path in getattr(config, option, None) or []:
            inputs.add(f"the --{option.replace('_', '-')} file", path)
    if not config.resume:  # --resume reads OUT/last, not --model
        add_model_files(inputs, config.model)
    for what, path in models:
        if path is not None:
            add_model_files(inputs, path, what)
    if config_file and Path(config_file).resolve() != (out / own_config).resolve():
        inputs.add("the --config file", config_file)
    writes = [out / name for name in (own_config, "log.csv", "training.png", *files)]
    inputs.check_outputs(writes, option=f"--out {out}", hint="choose another --out folder")
    for folder in ("last", "best", *folders):  # each replaced as a whole
        inside = inputs.inside(out / folder)
        if inside is not None:
            what, path = inside
            raise OutputError(
                f"--out {out}: writing {out / folder} would overwrite {what} {path}; nothing was written: choose "
                "another --out (or --resume to continue the run in it)"
            )


def run_train(args: argparse.Namespace) -> int:
    """The `vitpose train` handler: 0 when done, 130 when stopped early (resume with --resume)."""
    from vitpose.training import train

    config = config_from_args(args)
    check_out(config, getattr(args, "config", None))
    result = train(config)
    if int(os.environ.get("RANK", "0")) != 0:
        return 130 if result.interrupted else 0
    summary = run_summary(result)
    if result.interrupted:
        print(f"vitpose train: stopped early after {summary}; resume with --resume", file=sys.stderr)
        return 130
    print(f"{summary}; last checkpoint {result.out / 'last'}, log {result.out / 'log.csv'}")
    return 0


def run_summary(result: Any) -> str:
    """'N steps, M epochs, final loss L, best AP A at epoch E -> OUT/best' of a `TrainResult`."""
    summary = f"{result.step} steps, {result.epoch} epochs"
    if result.history:
        summary += f", final loss {result.history[-1]['loss']:.4g}"
    best = result.best
    if best is not None:
        key = "AP" if "AP" in best else "PCKh"
        summary += f", best {key} {best[key]:.4f} at epoch {best['epoch']} -> {result.out / 'best'}"
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m vitpose.cli.train train ...`: the same command outside the `vitpose` entry point."""
    return run_alone(add_parser, "ViTPose training", argv)


if __name__ == "__main__":
    sys.exit(main())
