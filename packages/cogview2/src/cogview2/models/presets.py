"""Model sizes by name, on the meta device: the official 6B architecture and smaller ones with
the same layout, for memory plans (`cogview2 info --plan --preset`) and the memory probe."""

from __future__ import annotations

from typing import Any

from coglm_core.config import CogLMConfig
from coglm_core.transformer import CogLM

from .config import DSRConfig, ITERSRConfig
from .sr import DirectSuperResolution, IterativeSuperResolution

__all__ = ["PRESETS", "build_models"]

PRESETS: dict[str, dict[str, int]] = {
    "6b": {},
    "medium": {"num_layers": 8, "hidden_size": 768, "num_attention_heads": 12,
               "num_image_tokens": 4096},
    "small": {"num_layers": 2, "hidden_size": 128, "num_attention_heads": 4,
              "num_image_tokens": 1024},
}  # fmt: skip
"""CogLM overrides of `CogLMConfig.cogview2_6b` (the release's layout: 20×20 → 60×60)."""


def build_models(preset: str) -> dict[str, Any]:
    """The three models of a preset on the meta device (DSR shares CogLM's base; nothing is
    allocated).

    Raises:
        ValueError: an unknown preset (the message lists them).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    config = CogLMConfig.cogview2_6b(hidden_dropout=0.0, attention_dropout=0.0, **PRESETS[preset])
    coglm = CogLM(config, device="meta").eval()
    dsr = DirectSuperResolution(coglm, DSRConfig()).eval()
    itersr = IterativeSuperResolution(CogLM(config, device="meta"), ITERSRConfig()).eval()
    return {"coglm": coglm, "dsr": dsr, "itersr": itersr}
