"""CogLM building blocks: fp32 LayerNorm, SelfAttention, MLP and the sandwich-LN layer.

Parameter names follow SwissArmyTransformer so that ``state_dict`` keys equal the official
checkpoint keys (reference.md §2.7).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import AttentionFn
from .config import CogLMConfig


class LayerNorm(nn.LayerNorm):
    """LayerNorm whose statistics and affine map are computed in (at least) float32, cast back to
    the input dtype (what apex ``FusedLayerNorm`` did under fp16, reference.md §2.6)."""

    def forward(self, x: Tensor) -> Tensor:
        """(..., H) -> (..., H), same dtype as ``x``."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        weight = self.weight.to(dtype) if self.weight is not None else None
        bias = self.bias.to(dtype) if self.bias is not None else None
        out = F.layer_norm(x.to(dtype), self.normalized_shape, weight, bias, self.eps)
        return out.to(x.dtype)


def gelu_tanh(x: Tensor) -> Tensor:
    """SAT ``gelu_impl``: ``0.5·x·(1 + tanh(0.7978845608028654·(x + 0.044715·x³)))``."""
    return F.gelu(x, approximate="tanh")


class SelfAttention(nn.Module):
    """Holds the attention weights; the computation is done by an `AttentionFn`.

    Attributes:
        query_key_value: Linear(H, 3H). Output rows ``[0,H)`` are q, ``[H,2H)`` k, ``[2H,3H)`` v;
            head j owns dims ``[j·hd, (j+1)·hd)`` of each third (reference.md §2.3).
        dense: Linear(H, H), the output projection.
    """

    def __init__(self, config: CogLMConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.attention_dropout = config.attention_dropout
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def split_heads(self, qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, S, 3H) -> q, k, v, each (B, heads, S, hd)."""
        b, s, _ = qkv.shape
        qkv = qkv.view(b, s, 3, self.num_heads, self.head_dim)  # (B, S, 3, h, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, S, hd)
        return q, k, v

    def merge_heads(self, ctx: Tensor) -> Tensor:
        """(B, heads, S, hd) -> (B, S, H), head-major channels."""
        b, h, s, d = ctx.shape
        return ctx.transpose(1, 2).reshape(b, s, h * d)

    def dropout_probs(self, probs: Tensor) -> Tensor:
        """Attention-probability dropout (training only)."""
        return F.dropout(probs, self.attention_dropout, self.training)


class MLP(nn.Module):
    """``dense_4h_to_h(gelu_tanh(dense_h_to_4h(x)))``."""

    def __init__(self, config: CogLMConfig) -> None:
        super().__init__()
        self.dense_h_to_4h = nn.Linear(config.hidden_size, config.mlp_hidden_size)
        self.dense_4h_to_h = nn.Linear(config.mlp_hidden_size, config.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        """(B, S, H) -> (B, S, H)."""
        return self.dense_4h_to_h(gelu_tanh(self.dense_h_to_4h(x)))


class CogLMLayer(nn.Module):
    """One sandwich-LN layer, exactly reference.md §2.2."""

    def __init__(self, config: CogLMConfig) -> None:
        super().__init__()
        eps = config.layernorm_epsilon
        h = config.hidden_size
        self.hidden_dropout = config.hidden_dropout
        self.input_layernorm = LayerNorm(h, eps=eps)
        self.attention = SelfAttention(config)
        self.third_layernorm = LayerNorm(h, eps=eps)
        self.post_attention_layernorm = LayerNorm(h, eps=eps)
        self.mlp = MLP(config)
        self.fourth_layernorm = LayerNorm(h, eps=eps)

    def forward(self, x: Tensor, attention_fn: AttentionFn, layer_index: int) -> Tensor:
        """(B, S, H) -> (B, S, H)."""
        a = attention_fn(self.attention, self.input_layernorm(x), layer_index)
        a = F.dropout(a, self.hidden_dropout, self.training)
        x = x + self.third_layernorm(a)
        m = self.mlp(self.post_attention_layernorm(x))
        m = F.dropout(m, self.hidden_dropout, self.training)
        return x + self.fourth_layernorm(m)


def init_weights(module: nn.Module, config: CogLMConfig) -> None:
    """Initialise as SAT v0.2.1 (reference.md §2.5), in place.

    Embeddings, ``query_key_value`` and ``dense_h_to_4h``: N(0, std); attention ``dense`` and
    ``dense_4h_to_h``: N(0, std / sqrt(2·num_layers)); biases 0; LayerNorm weight 1, bias 0.
    """
    std = config.init_std
    out_std = std / math.sqrt(2.0 * config.num_layers)
    for name, mod in module.named_modules():
        if isinstance(mod, nn.LayerNorm):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.Embedding):
            nn.init.normal_(mod.weight, 0.0, std)
        elif isinstance(mod, nn.Linear):
            scaled = name.endswith("attention.dense") or name.endswith("dense_4h_to_h")
            nn.init.normal_(mod.weight, 0.0, out_std if scaled else std)
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
