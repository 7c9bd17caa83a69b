"""`vitpose distill`: thin argument parsing over `vitpose.training.distill`.

`add_parser(subparsers)` registers the sub-command on the `vitpose` parser; `python -m vitpose.cli.distill distill
...` runs it alone (the form to give `torchrun -m`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from vitpose.cli.common import run_alone
from vitpose.cli.train import add_training_options, check_out, config_from_args, run_summary

__all__ = ["add_parser", "main", "run_distill"]

_DESCRIPTION = """\
Distill a large ViTPose (the teacher) into a small one (the student), as the ViTPose paper's
transferability experiment: output distillation (the student learns the teacher's heatmaps), the
knowledge token (a token trained on the frozen teacher, then frozen in the student), or both.

Stage 1 (methods token and both) trains the teacher's knowledge token in OUT/token and writes
OUT/knowledge_token.safetensors; stage 2 trains the student with the recipe and options of
vitpose train and writes OUT as vitpose train does (OUT/last, OUT/best, OUT/log.csv,
OUT/training.png). The student is an ordinary checkpoint for predict, eval, video, serve and export.
"""

_EPILOG = """\
examples:
  a ViTPose-S student from a fine-tuned ViTPose-L, both methods (the paper's best):
    vitpose distill --teacher runs/large/best --student small --train-annotations train.json \\
        --train-images imgs/ --val-annotations val.json --val-images imgs/ --epochs 210 --out runs/distill
  output distillation alone, from the teacher's heatmaps only (no labels used):
    vitpose distill --teacher runs/large/best --student small --method output --gt-weight 0 ... --out runs/od
  reuse the token of an earlier run (stage 1 skipped):
    vitpose distill --teacher runs/large/best --student base --token runs/distill/knowledge_token.safetensors ...
  continue an interrupted run (either stage):
    vitpose distill --config runs/distill/distill_config.json --resume
  two GPUs:
    torchrun --standalone --nproc_per_node 2 -m vitpose.cli.distill distill --teacher ... --out runs/ddp
"""


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def add_parser(subparsers: Any) -> None:
    """Register `vitpose distill` on the sub-parsers of the `vitpose` command line."""
    from vitpose.training.distill import METHODS

    p = subparsers.add_parser(
        "distill",
        help="distill a large ViTPose into a small one (output distillation and the paper's knowledge token)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    S = argparse.SUPPRESS
    p.add_argument("--teacher", default=S, help="the teacher checkpoint: hub id, hub-format directory or .pth")
    add_training_options(p, model_flag="--student", model_note="the student: ")
    p.add_argument("--method", choices=METHODS, default=S,
                   help="token: the knowledge token; output: the teacher's heatmaps; both (default)")  # fmt: skip
    p.add_argument("--token", metavar="FILE", default=S,
                   help="a knowledge token file of an earlier run: stage 1 is skipped")  # fmt: skip
    p.add_argument("--token-epochs", type=int, default=S, help="stage 1's epochs (5)")
    p.add_argument("--token-lr", type=float, default=S,
                   help="stage 1's learning rate (default: --lr, or 5e-4; 1e-3 for a ViTPose++ teacher)")  # fmt: skip
    p.add_argument("--gt-weight", type=_weight, default=S, help="weight of the loss against the labels (1)")
    p.add_argument("--distill-weight", type=_weight, default=S,
                   help="weight of the loss against the teacher's heatmaps (1; methods output and both)")  # fmt: skip
    p.add_argument("--teacher-flip-test", action="store_true", default=S,
                   help="average the teacher's heatmaps with its mirrored crop's (twice its work)")  # fmt: skip
    p.add_argument("--unlabelled", action="store_true", default=S,
                   help="also learn from annotations with a box and no keypoint labels (a keypoints field missing "
                   "or all zero), from the teacher's heatmaps alone (methods output and both)")  # fmt: skip
    p.set_defaults(func=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    """The `vitpose distill` handler: 0 when done, 130 when stopped early (resume with --resume)."""
    from vitpose.training.distill import CONFIG_FILE, TOKEN_FILE, TOKEN_RUN, DistillConfig, distill

    config = config_from_args(args, DistillConfig, flags={"model": "--student"})
    check_out(
        config,
        getattr(args, "config", None),
        own_config=CONFIG_FILE,
        models=[("the --teacher checkpoint", config.teacher), ("the --token file", config.token)],
        files=["train_config.json", TOKEN_FILE],
        folders=[TOKEN_RUN],
    )
    result = distill(config)
    if int(os.environ.get("RANK", "0")) != 0:
        return 130 if result.interrupted else 0
    student = result.student
    if student is None:  # stopped in stage 1
        print("vitpose distill: stopped early in stage 1 (the token); resume with --resume", file=sys.stderr)
        return 130
    summary = run_summary(student)
    if result.interrupted:
        print(f"vitpose distill: stopped early after {summary}; resume with --resume", file=sys.stderr)
        return 130
    token = f", knowledge token {result.out / TOKEN_FILE}" if result.token is not None and not config.token else ""
    print(f"student: {summary}; last checkpoint {result.out / 'last'}, log {result.out / 'log.csv'}{token}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m vitpose.cli.distill distill ...`: the same command outside the `vitpose` entry point."""
    return run_alone(add_parser, "ViTPose distillation", argv)


if __name__ == "__main__":
    sys.exit(main())
