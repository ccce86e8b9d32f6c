"""``cogview2 data emoji`` and ``cogview2 data export``: the argparse layer of the data set.

cogview2 data emoji --out data/emoji [--cache DIR] [--styles twemoji openmoji]
                    [--sizes 160 480] [--limit N] [--heldout-fraction F] [--seed S]
cogview2 data export --data data/emoji --out out/pngs [--split train] [--size 160]
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_data_commands"]


def _run_data_emoji(args: argparse.Namespace) -> int:
    from . import BuildConfig, build_emoji_dataset, fetch_npm_packages, packages_for

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
    from . import export_png_folder

    out = export_png_folder(
        args.data, args.out, split=args.split, size=args.size, caption_template=args.template
    )
    print(f"wrote {out / 'images'}, {out / 'captions.txt'} and {out / 'metadata.jsonl'}")
    return 0


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``data emoji`` and ``data export`` on the ``cogview2`` command line."""
    from . import CAPTION_TEMPLATES, DEFAULT_STYLES, DEFAULT_TEMPLATE, SPLITS, STYLES

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
