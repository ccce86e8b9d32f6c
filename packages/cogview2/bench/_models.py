"""Random-weight models of a given size for the benchmarks (no tokenizer needed)."""

from __future__ import annotations

import torch

from coglm_core.config import CogLMConfig
from coglm_core.transformer import CogLM
from cogview2.models import DirectSuperResolution, DSRConfig, IterativeSuperResolution, ITERSRConfig


def bench_config(num_layers: int, hidden: int, heads: int, num_image_tokens: int) -> CogLMConfig:
    """Full 20×20 / 60×60 layout with a reduced width, depth and vocabulary."""
    v = num_image_tokens
    return CogLMConfig(
        num_layers=num_layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        vocab_size=v + 1000,
        max_sequence_length=1024,
        num_image_tokens=v,
        boi_id=v + 990,
        boe_id=v + 991,
        boc_id=v + 992,
        pad_id=v + 3,
        english_id_range=(v + 100, v + 500),
        chinese_id_range=(v + 500, v + 900),
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )


def build_models(config: CogLMConfig, device: str, dtype: torch.dtype, backend: str | None = None):
    """(coglm, dsr sharing coglm's base, itersr with its own base), eval mode."""
    coglm = CogLM(config, device=device, dtype=dtype).eval()
    dsr = DirectSuperResolution(coglm, DSRConfig(), backend=backend).eval()
    itersr = IterativeSuperResolution(
        CogLM(config, device=device, dtype=dtype), ITERSRConfig(), backend=backend
    ).eval()
    labels = torch.arange(config.num_image_tokens) % min(500, config.num_image_tokens)
    return coglm, dsr, itersr, labels
