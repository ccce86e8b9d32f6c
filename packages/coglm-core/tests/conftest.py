"""Shared fixtures: tiny float64 models with dropout off."""

from __future__ import annotations

import pytest
import torch

from coglm_core import CogLM, CogLMConfig


@pytest.fixture
def tiny_config() -> CogLMConfig:
    return CogLMConfig.tiny(hidden_dropout=0.0, attention_dropout=0.0)


@pytest.fixture
def tiny_model(tiny_config: CogLMConfig) -> CogLM:
    torch.manual_seed(0)
    model = CogLM(tiny_config, dtype=torch.float64).eval()
    with torch.no_grad():  # non-trivial LayerNorm affine maps and biases
        for name, p in model.named_parameters():
            if "layernorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(10.0)
    return model
