"""CogView2 hierarchical text-to-image: stage 1, direct super-resolution, LoPAR iterative super-resolution, completion, captioning, CLI and API."""

from importlib.metadata import version as _version

from .config import PipelineConfig
from .convert import ConversionReport, convert_official, load_official
from .lopar import ORDER_MATRIX, PASS_TOP_K, pass_mask, tiled_order
from .models import DirectSuperResolution, DSRConfig, IterativeSuperResolution, ITERSRConfig
from .outputs import CogView2Output
from .pipeline import DEMO_WEIGHTS, CogView2Pipeline
from .recipes import RECIPES, SamplingRecipe, get_recipe
from .stage_table import STAGE_TABLE, STAGES, StageSpec
from .threads import apply_thread_policy
from .tiny import build_tiny_pipeline

__version__ = _version("cogview2")

__all__ = [
    "DEMO_WEIGHTS",
    "ORDER_MATRIX",
    "PASS_TOP_K",
    "RECIPES",
    "STAGES",
    "STAGE_TABLE",
    "CogView2Output",
    "CogView2Pipeline",
    "ConversionReport",
    "DSRConfig",
    "DirectSuperResolution",
    "ITERSRConfig",
    "IterativeSuperResolution",
    "PipelineConfig",
    "SamplingRecipe",
    "StageSpec",
    "__version__",
    "apply_thread_policy",
    "build_tiny_pipeline",
    "convert_official",
    "get_recipe",
    "load_official",
    "pass_mask",
    "tiled_order",
]
