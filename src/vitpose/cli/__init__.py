"""`vitpose` command line: thin argument parsing over the library; no logic of its own.

One module per subcommand (`predict`, `eval`, `video`, `train`, `export`, `serve`, `convert` with `info`), each with an
`add_parser(subparsers)`; the option groups they share and the one error handler are in `vitpose.cli.common`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from vitpose import __version__
from vitpose.cli.common import run

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The `vitpose` parser with every subcommand."""
    # Imported here, not at the top: `python -m vitpose.cli.train` (torchrun's form) imports this package first,
    # and runpy warns when the module it is about to run is already in sys.modules.
    from vitpose.cli import convert, distill, export, predict, serve, train, video
    from vitpose.cli import eval as evaluate

    parser = argparse.ArgumentParser(prog="vitpose", description="ViTPose and ViTPose++ pose estimation.")
    parser.add_argument("--version", action="version", version=f"vitpose {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    convert.add_parser(sub)
    predict.add_parser(sub)
    evaluate.add_parser(sub)
    video.add_parser(sub)
    train.add_parser(sub)
    distill.add_parser(sub)
    export.add_parser(sub)
    serve.add_parser(sub)
    convert.add_info_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`vitpose ...` (and `python -m vitpose ...`): the exit code of the command (2 on a user error)."""
    return run(build_parser().parse_args(argv))
