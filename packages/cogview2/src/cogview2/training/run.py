"""Running the recipes: one by name, or ``all`` in order, skipping what is finished.

``run_recipe("all", cfg, resume=True)`` is what ``cogview2 train all --config FILE --resume``
does; the command line (`training.cli`) only parses arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from .config import TrainingConfig

__all__ = ["RECIPE_NAMES", "from_start", "is_finished", "run_recipe"]

RECIPE_NAMES: tuple[str, ...] = (
    "text-tokenizer",
    "vqvae",
    "tokenize",
    "coglm",
    "dsr",
    "itersr",
    "assemble",
)
"""The recipes in the order ``all`` runs them."""

_STAGE = MappingProxyType(
    {
        "text-tokenizer": ("text_tokenizer", "layout.json"),
        "vqvae": ("vqvae", "vqvae.safetensors"),
        "tokenize": ("tokenize", "cluster_labels.npy"),
        "coglm": ("coglm", "final/model.safetensors"),
        "dsr": ("dsr", "final/mixins.safetensors"),
        "itersr": ("itersr", "final/mixins.safetensors"),
    }
)
"""Stage folder and the file that marks a finished stage."""


def from_start(cfg: TrainingConfig, recipe: str) -> bool:
    """Whether ``start_from`` provides ``recipe``'s model, so that the recipe does not run."""
    if not cfg.start_from:
        return False
    return recipe in ("text-tokenizer", "vqvae") or (
        recipe in ("coglm", "dsr", "itersr") and not cfg.trains(recipe)
    )


def is_finished(cfg: TrainingConfig, recipe: str) -> bool:
    """True when ``recipe``'s final output exists, or ``start_from`` provides its model
    (``assemble`` is never skipped)."""
    if from_start(cfg, recipe):
        return True
    if recipe not in _STAGE:
        return False
    stage, marker = _STAGE[recipe]
    return (cfg.stage_dirs[stage] / marker).is_file()


def _check_fresh(cfg: TrainingConfig, recipe: str, resume: bool) -> None:
    if recipe not in _STAGE or resume:
        return
    folder = cfg.stage_dirs[_STAGE[recipe][0]]
    if folder.is_dir() and any(folder.iterdir()):
        raise ValueError(
            f"{folder} already holds a run of {recipe!r}; pass --resume to continue it "
            "(or delete the folder to start over)"
        )


def run_recipe(
    recipe: str,
    cfg: TrainingConfig,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> Path:
    """Run one recipe (or ``"all"``: every unfinished one in order).

    Args:
        recipe: One of `RECIPE_NAMES` or ``"all"``.
        cfg: The configuration.
        resume: Continue a stage whose folder exists (else such a folder is an error).
        device: Torch device (default: this process's GPU if any, else CPU).
        progress: tqdm bars.

    Returns:
        The recipe's output (stage folder, final model folder or weights folder).

    Raises:
        ValueError: unknown recipe, an existing run without ``resume``, or a recipe whose
            model ``start_from`` provides.
    """
    from .assemble import assemble_recipe
    from .pretrain import pretrain_recipe
    from .super_resolution import dsr_recipe, itersr_recipe
    from .tokenize_data import tokenize_recipe
    from .tokenizers import train_text_recipe, train_vqvae_recipe

    runners: dict[str, Callable[[], Path]] = {
        "text-tokenizer": lambda: train_text_recipe(cfg, progress=progress),
        "vqvae": lambda: train_vqvae_recipe(cfg, device=device, progress=progress),
        "tokenize": lambda: tokenize_recipe(cfg, progress=progress),
        "coglm": lambda: pretrain_recipe(cfg, device=device, progress=progress),
        "dsr": lambda: dsr_recipe(cfg, device=device, progress=progress),
        "itersr": lambda: itersr_recipe(cfg, device=device, progress=progress),
        "assemble": lambda: assemble_recipe(cfg),
    }
    if recipe == "all":
        result = Path(cfg.workdir)
        for name in RECIPE_NAMES:
            if from_start(cfg, name) or (resume and is_finished(cfg, name)):
                continue
            _check_fresh(cfg, name, resume)
            result = runners[name]()
        return result
    if recipe not in runners:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {[*RECIPE_NAMES, 'all']}")
    if from_start(cfg, recipe):
        raise ValueError(
            f"start_from = {cfg.start_from!r} provides the {recipe} model; name it in retrain "
            "(coglm, dsr, itersr) or remove start_from to train it"
        )
    _check_fresh(cfg, recipe, resume)
    return runners[recipe]()
