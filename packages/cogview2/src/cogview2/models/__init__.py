"""Super-resolution models (DSR, ITERSR) and their attention functions."""

from .attention import AttentionPlus, DSRAttention, ITERSRAttention, dsr_level0_mask
from .config import DSRConfig, ITERSRConfig, config_from_json, config_to_json
from .sr import (
    DirectSuperResolution,
    ExtraPositionEmbedding,
    IterativeSuperResolution,
    build_sr,
    tile_extra_positions,
)

__all__ = [
    "AttentionPlus",
    "DSRAttention",
    "DSRConfig",
    "DirectSuperResolution",
    "ExtraPositionEmbedding",
    "ITERSRAttention",
    "ITERSRConfig",
    "IterativeSuperResolution",
    "build_sr",
    "config_from_json",
    "config_to_json",
    "dsr_level0_mask",
    "tile_extra_positions",
]
