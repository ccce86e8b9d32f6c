"""Training recipes for the emoji demo models: tokenizers, tokenisation, CogLM, DSR, ITERSR, assembly.

Each recipe reads one section of a TOML config (`load_training_config`), writes into
``<workdir>/<stage>/``, resumes from its last checkpoint, and runs in one process, under
``torchrun`` (DDP, or FSDP2 with ``fsdp = true``; CPUs or GPUs) or on a GPU. ``add_train_commands`` registers
``cogview2 train <recipe> --config FILE [--resume]``.
"""

from .cli import add_train_commands
from .config import (
    AssembleRecipe,
    CogLMRecipe,
    DataRecipe,
    DSRRecipe,
    ITERSRRecipe,
    OptimConfig,
    TextTokenizerRecipe,
    TokenizeRecipe,
    TrainingConfig,
    VQVAERecipe,
    load_training_config,
)
from .run import RECIPE_NAMES, run_recipe

__all__ = [
    "RECIPE_NAMES",
    "AssembleRecipe",
    "CogLMRecipe",
    "DSRRecipe",
    "DataRecipe",
    "ITERSRRecipe",
    "OptimConfig",
    "TextTokenizerRecipe",
    "TokenizeRecipe",
    "TrainingConfig",
    "VQVAERecipe",
    "add_train_commands",
    "load_training_config",
    "run_recipe",
]
