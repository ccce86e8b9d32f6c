"""Draw images from text with CogView2's hierarchy (a 20×20-token sketch, then direct and
iterative super-resolution to 480 px), complete and caption images, and train, evaluate and
serve the models. Without --weights the small emoji demo models shipped with the package are
used: try `cogview2 generate "red apple"`.

Implementation: a thin argparse layer over the library.

Each command group registers itself with an ``_add_<group>_commands(subparsers)`` function
listed in ``_COMMAND_GROUPS``; each command sets ``func`` (``argparse.Namespace -> int``),
which converts the parsed arguments into library calls. No ``Namespace`` goes below this file.

    cogview2 data emoji --out data/emoji [--cache DIR] [--styles twemoji openmoji]
                        [--sizes 160 480] [--limit N] [--heldout-fraction F] [--seed S]
    cogview2 data export --data data/emoji --out out/pngs [--split train] [--size 160]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .threads import THREADS_ENV, apply_thread_policy

__all__ = ["build_parser", "main"]

_log = logging.getLogger("cogview2")


def _run_data_emoji(args: argparse.Namespace) -> int:
    from .data import BuildConfig, build_emoji_dataset, fetch_npm_packages, packages_for

    config = BuildConfig(
        styles=tuple(args.styles),
        sizes=tuple(args.sizes),
        heldout_fraction=args.heldout_fraction,
        seed=args.seed,
        limit=args.limit,
        samples_per_shard=args.samples_per_shard,
        workers=args.workers,
        progress=not args.quiet,
    )
    roots = fetch_npm_packages(packages_for(config.styles), args.cache, npm=args.npm)
    manifest = build_emoji_dataset(roots, args.out, config, overwrite=args.overwrite)
    for name, style in manifest["styles"].items():
        skipped = {k: v for k, v in style["skipped"].items() if v}
        print(f"{name}: {style['samples']} skipped={skipped} no_svg={style['missing_svg']}")
    splits = manifest["splits"]
    print(
        f"wrote {splits['train']['samples']} train + {splits['heldout']['samples']} held-out "
        f"samples ({manifest['total_bytes'] / 2**20:.1f} MiB) to {args.out} "
        f"in {manifest['build_seconds']:.0f} s"
    )
    return 0


def _run_data_export(args: argparse.Namespace) -> int:
    from .data import export_png_folder

    out = export_png_folder(
        args.data, args.out, split=args.split, size=args.size, caption_template=args.template
    )
    print(f"wrote {out / 'images'}, {out / 'captions.txt'} and {out / 'metadata.jsonl'}")
    return 0


def _add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    from .data import CAPTION_TEMPLATES, DEFAULT_STYLES, DEFAULT_TEMPLATE, SPLITS, STYLES

    data = subparsers.add_parser("data", help="build and export training data")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    emoji = commands.add_parser(
        "emoji",
        help="fetch emoji art from npm and build the bilingual text-image data set",
        description="Fetch emoji SVGs and CLDR annotations with `npm pack`, render them, "
        "caption them in English and Chinese, split by emoji and write tar shards.",
    )
    emoji.add_argument("--out", type=Path, required=True, help="output directory")
    emoji.add_argument("--cache", type=Path, default=None, help="npm tarball cache directory")
    emoji.add_argument(
        "--styles", nargs="+", default=list(DEFAULT_STYLES), choices=sorted(STYLES), metavar="STYLE"
    )
    emoji.add_argument("--sizes", nargs="+", type=int, default=[160, 480], metavar="PX")
    emoji.add_argument("--limit", type=int, default=None, help="only N emoji (quick builds)")
    emoji.add_argument("--heldout-fraction", type=float, default=0.1)
    emoji.add_argument("--seed", type=int, default=0, help="split seed")
    emoji.add_argument("--samples-per-shard", type=int, default=1000)
    emoji.add_argument("--workers", type=int, default=1, help="render processes")
    emoji.add_argument("--npm", default="npm", help="npm executable")
    emoji.add_argument("--overwrite", action="store_true", help="replace a data set in --out")
    emoji.add_argument("--quiet", action="store_true", help="no progress bars")
    emoji.set_defaults(func=_run_data_emoji)

    export = commands.add_parser(
        "export", help="export a split as a PNG folder + captions.txt (for tokenizer training)"
    )
    export.add_argument("--data", type=Path, required=True, help="a built data set directory")
    export.add_argument("--out", type=Path, required=True, help="output directory")
    export.add_argument("--split", default="train", choices=SPLITS)
    export.add_argument("--size", type=int, default=160)
    export.add_argument("--template", default=DEFAULT_TEMPLATE, choices=sorted(CAPTION_TEMPLATES))
    export.set_defaults(func=_run_data_export)


def _add_pipeline_commands(subparsers: argparse._SubParsersAction) -> None:
    from ._commands import add_pipeline_commands

    add_pipeline_commands(subparsers)


def _add_train_commands(subparsers: argparse._SubParsersAction) -> None:
    from .training.cli import add_train_commands

    add_train_commands(subparsers)


def _add_eval_command(subparsers: argparse._SubParsersAction) -> None:
    from .evaluation.cli import add_eval_command

    add_eval_command(subparsers)


def _add_serve_command(subparsers: argparse._SubParsersAction) -> None:
    from .web.server import add_serve_command  # gradio itself is imported only when serving

    add_serve_command(subparsers)


_COMMAND_GROUPS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_pipeline_commands,
    _add_data_commands,
    _add_train_commands,
    _add_eval_command,
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
