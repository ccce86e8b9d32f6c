"""The `AttentionFn`s of direct and iterative super-resolution (reference.md §4.2, §5.2).

Both plug into `coglm_core.CogLM.forward(attention_fn=...)`: the base layer's LayerNorms and MLP
run as usual and only the attention is replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from coglm_core.attention import sat_attention
from coglm_core.layers import SelfAttention
from localattn import local_attention_2d, merge_attentions

from .config import DSRConfig, ITERSRConfig


class AttentionPlus(nn.Module):
    """The DSR ``attention_plus`` mixin: per-layer q/k/v and output projections of level 1.

    State-dict keys ``query_key_value.{i}.{weight,bias}`` and ``dense.{i}.{weight,bias}`` equal
    the SAT mixin keys below ``mixins.attention_plus.``.
    """

    def __init__(self, num_layers: int, hidden_size: int) -> None:
        super().__init__()
        self.query_key_value = nn.ModuleList(
            nn.Linear(hidden_size, 3 * hidden_size) for _ in range(num_layers)
        )
        self.dense = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(num_layers))


def _grid(x: Tensor, side: int) -> Tensor:
    """(B, heads, side*side, D) -> (B, heads, side, side, D), row-major."""
    b, h, s, d = x.shape
    if s != side * side:
        raise ValueError(f"expected {side * side} grid tokens, got {s}")
    return x.reshape(b, h, side, side, d)


def _flat(x: Tensor) -> Tensor:
    """(B, heads, G, G, D) -> (B, heads, G*G, D)."""
    b, h, gh, gw, d = x.shape
    return x.reshape(b, h, gh * gw, d)


@dataclass
class DSRAttention:
    """Direct-SR attention: level 0 dense over ``[pad | text | low-res]``, level 1 (hi-res) one
    joint softmax over a cross window on the low-res keys and a local window on the hi-res keys.

    Attributes:
        config: The DSR layout.
        level0_mask: bool (B, L0, L0), True = may attend (see `dsr_level0_mask`).
        attention_plus: The level-1 projections.
        backend: localattn backend name, or None for automatic choice.
    """

    config: DSRConfig
    level0_mask: Tensor
    attention_plus: AttentionPlus
    backend: str | None = None

    def __call__(self, module: SelfAttention, hidden: Tensor, layer: int) -> Tensor:
        """(B, L0 + G², H) after input_layernorm -> (B, L0 + G², H) after the dense projections."""
        cfg = self.config
        l0 = cfg.level0_len
        q0, k0, v0 = module.split_heads(module.query_key_value(hidden[:, :l0]))  # (B, h, L0, hd)
        ctx0 = sat_attention(q0, k0, v0, self.level0_mask[:, None], None)
        out0 = module.dense(module.merge_heads(ctx0))  # (B, L0, H)

        qkv1 = self.attention_plus.query_key_value[layer](hidden[:, l0:])
        q1, k1, v1 = (_grid(t, cfg.high_grid) for t in module.split_heads(qkv1))
        k_low = _grid(k0[:, :, cfg.text_slots :], cfg.low_grid)  # (B, h, g, g, hd)
        v_low = _grid(v0[:, :, cfg.text_slots :], cfg.low_grid)
        cross, lse_cross = local_attention_2d(
            q1, k_low, v_low, cfg.cross_kernel, return_lse=True, backend=self.backend
        )
        local, lse_local = local_attention_2d(
            q1, k1, v1, cfg.local_kernel, return_lse=True, backend=self.backend
        )
        ctx1, _ = merge_attentions([cross, local], [lse_cross, lse_local])  # (B, h, G, G, hd)
        out1 = self.attention_plus.dense[layer](module.merge_heads(_flat(ctx1)))
        return torch.cat([out0, out1], dim=1)


@dataclass
class ITERSRAttention:
    """Iterative-SR attention: text queries see the text keys only; each image query takes one
    joint softmax over the text keys and a local window on the hi-res grid.

    Attributes:
        config: The ITERSR layout.
        text_mask: bool (B, text_slots), False on padding slots.
        backend: localattn backend name, or None.
    """

    config: ITERSRConfig
    text_mask: Tensor
    backend: str | None = None

    def __call__(self, module: SelfAttention, hidden: Tensor, layer: int) -> Tensor:
        """(B, T + G², H) after input_layernorm -> (B, T + G², H) after ``dense``."""
        cfg = self.config
        t = cfg.text_slots
        q, k, v = module.split_heads(module.query_key_value(hidden))  # (B, h, S, hd)
        key_mask = self.text_mask[:, None, None, :]  # (B, 1, 1, T)
        ctx_text = sat_attention(q[:, :, :t], k[:, :, :t], v[:, :, :t], key_mask, None)
        ctx_img = local_attention_2d(
            _grid(q[:, :, t:], cfg.high_grid),
            _grid(k[:, :, t:], cfg.high_grid),
            _grid(v[:, :, t:], cfg.high_grid),
            cfg.local_kernel,
            extra_k=k[:, :, :t],
            extra_v=v[:, :, :t],
            extra_mask=self.text_mask,
            backend=self.backend,
        )
        ctx = torch.cat([ctx_text, _flat(ctx_img)], dim=2)
        return module.dense(module.merge_heads(ctx))


def dsr_level0_mask(n_pad: Tensor, config: DSRConfig) -> Tensor:
    """Level-0 mask of DSR (reference.md §4.2).

    All ones, except text/pad rows never see the low-res image and real tokens never see the
    padding.

    Args:
        n_pad: (B,) long, padding slots of each row.

    Returns:
        bool (B, L0, L0).
    """
    l0, t = config.level0_len, config.text_slots
    idx = torch.arange(l0, device=n_pad.device)
    is_pad = idx[None, :] < n_pad[:, None]  # (B, L0)
    mask = torch.ones(n_pad.shape[0], l0, l0, dtype=torch.bool, device=n_pad.device)
    mask[:, :t, t:] = False
    mask &= ~(~is_pad[:, :, None] & is_pad[:, None, :])
    return mask
