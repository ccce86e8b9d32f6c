"""``cogview2 train <recipe> --config FILE [--resume]``: the argparse layer of the recipes.

cogview2 train text-tokenizer --config configs/emoji-demo.toml
torchrun --nproc-per-node 2 -m cogview2 train coglm --config configs/emoji-demo.toml
cogview2 train all --config configs/emoji-demo.toml --resume
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import load_training_config
from .run import RECIPE_NAMES, run_recipe

__all__ = ["add_train_commands"]


def _run(args: argparse.Namespace) -> int:
    from .runtime import init_distributed, is_main

    cfg = load_training_config(args.config)
    init_distributed()
    out = run_recipe(
        args.recipe, cfg, resume=args.resume, device=args.device, progress=not args.quiet
    )
    if is_main():
        print(f"{args.recipe}: done -> {out}")
    return 0


def add_train_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train`` on the ``cogview2`` command line (see the module docstring)."""
    p = subparsers.add_parser(
        "train",
        help="train the tokenizers, CogLM, DSR and ITERSR on the emoji data set",
        description="Run one training recipe (or all of them) from a TOML config; every recipe "
        "is resumable, runs in one process, under torchrun (DDP, or FSDP2 with fsdp = true; "
        "CPUs or GPUs) or on a GPU.",
    )
    p.add_argument("recipe", choices=[*RECIPE_NAMES, "all"])
    p.add_argument("--config", type=Path, required=True, help="recipe TOML file")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--device", default=None, help="torch device (default: GPU if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
