"""Draw images from text with CogView2's hierarchy (a 20×20-token sketch, then direct and
iterative super-resolution to 480 px), complete and caption images, and train, evaluate and
serve the models. Without --weights the small emoji demo models shipped with the package are
used: try `cogview2 generate "red apple"`.

Implementation: a thin argparse layer over the library. Each command group registers itself
with an ``_add_<group>_commands(subparsers)`` function listed in ``_COMMAND_GROUPS`` (the
pipeline commands in ``_commands``, ``data`` in ``data.cli``, ``train`` in ``training.cli``,
``eval`` in ``evaluation.cli``, ``eval-coco`` in ``evaluation.coco_cli``, ``serve`` in
``web.server``); each command sets ``func``
(``argparse.Namespace -> int``), which converts the parsed arguments into library calls.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .threads import THREADS_ENV, apply_thread_policy

__all__ = ["build_parser", "main"]

_log = logging.getLogger("cogview2")


def _add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    from .data.cli import add_data_commands

    add_data_commands(subparsers)


def _add_pipeline_commands(subparsers: argparse._SubParsersAction) -> None:
    from ._commands import add_pipeline_commands

    add_pipeline_commands(subparsers)


def _add_train_commands(subparsers: argparse._SubParsersAction) -> None:
    from .training.cli import add_train_commands

    add_train_commands(subparsers)


def _add_eval_command(subparsers: argparse._SubParsersAction) -> None:
    from .evaluation.cli import add_eval_command

    add_eval_command(subparsers)


def _add_eval_coco_command(subparsers: argparse._SubParsersAction) -> None:
    from .evaluation.coco_cli import add_eval_coco_command

    add_eval_coco_command(subparsers)


def _add_serve_command(subparsers: argparse._SubParsersAction) -> None:
    from .web.server import add_serve_command  # gradio itself is imported only when serving

    add_serve_command(subparsers)


_COMMAND_GROUPS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_pipeline_commands,
    _add_data_commands,
    _add_train_commands,
    _add_eval_command,
    _add_eval_coco_command,
    _add_serve_command,
)
"""Each registers its top-level commands (``generate``, ``data``, ``train``, ``eval``, ...)."""


def _add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads`` on every command (recursing into groups such as ``data``)."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if groups:
        for group in groups:
            for sub in group.choices.values():
                _add_threads(sub)
        return
    parser.add_argument(
        "--threads",
        default=None,
        metavar="N",
        help=f"CPU threads: a number, or 'auto' (the cores idle when the command starts; the "
        f"default, also set by ${THREADS_ENV}). One thread per busy core less avoids the "
        "10-30x slowdown of a contended OpenMP pool",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``cogview2`` argument parser with every registered command."""
    parser = argparse.ArgumentParser(prog="cogview2", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in _COMMAND_GROUPS:
        add_commands(subparsers)
    _add_threads(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cogview2`` console script; returns the exit status.

    Expected failures (bad arguments, missing ``npm``, missing files) print one line to
    stderr and return 2 instead of a traceback.
    """
    from .data import NpmNotFoundError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        threads = apply_thread_policy(args.threads)
        _log.debug("torch threads: %d", threads)
        return int(args.func(args))
    except (NpmNotFoundError, ValueError, FileNotFoundError) as err:
        print(f"cogview2 {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
