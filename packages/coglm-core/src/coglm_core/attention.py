"""Attention with SAT semantics, the swappable `AttentionFn` contract, and the KV cache."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .masks import RegionMask


class SelfAttentionLike(Protocol):
    """What an `AttentionFn` may use of the attention module it is given (``layers.SelfAttention``
    provides it; declared here so that this module does not import ``layers``, which imports it)."""

    query_key_value: nn.Linear
    dense: nn.Linear
    attention_dropout: float
    training: bool

    def split_heads(self, qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, S, 3H) → q, k, v of (B, heads, S, D)."""
        ...

    def merge_heads(self, ctx: Tensor) -> Tensor:
        """(B, heads, S, D) → (B, S, H)."""
        ...

    def dropout_probs(self, probs: Tensor) -> Tensor:
        """Attention dropout (training only)."""
        ...


AttentionFn = Callable[[SelfAttentionLike, Tensor, int], Tensor]
"""``fn(attention_module, hidden (B, S, H) after input_layernorm, layer_index) -> (B, S, H)``.

The returned tensor is the attention output AFTER the ``dense`` projection. A custom function may
use ``module.query_key_value``/``module.dense`` (or other weights) and the helpers
``module.split_heads`` / ``module.merge_heads`` / ``module.dropout_probs``.
"""

MASKED_SCORE = -10000.0
"""Score given to masked entries. SAT computes ``s*m - 10000*(1-m)``, so a masked entry is exactly
-10000 (not -inf): a row with no visible key gets a uniform softmax instead of NaN, and the value is
representable in fp16. Checkpoints were trained with this convention."""


def sat_attention_probs(
    q: Tensor,
    k: Tensor,
    mask: Tensor | None,
    bias: Tensor | None,
) -> Tensor:
    """Attention probabilities with SAT semantics (reference.md §2.3).

    Args:
        q: (B, heads, Sq, hd) queries, NOT yet scaled.
        k: (B, heads, Sk, hd) keys.
        mask: bool, broadcastable to (B, heads, Sq, Sk); True = may attend. None = all visible.
        bias: float, broadcastable to (B, heads, Sq, Sk); added before masking. None = no bias.

    Returns:
        (B, heads, Sq, Sk) softmax probabilities in the dtype of ``q``.
    """
    scores = torch.matmul(q / math.sqrt(q.shape[-1]), k.transpose(-1, -2))  # (B, h, Sq, Sk)
    if bias is not None:
        scores = scores + bias.to(scores.dtype)
    if mask is not None:
        scores = scores.masked_fill(~mask, MASKED_SCORE)
    return torch.softmax(scores, dim=-1)


def sat_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None
) -> Tensor:
    """``softmax(mask(q/sqrt(hd) · kᵀ + bias)) · v`` with masked scores exactly -10000.

    Equivalent PyTorch code::

        s = (q / hd**0.5) @ k.transpose(-1, -2) + bias
        s = torch.where(mask, s, -10000.0)
        out = s.softmax(-1) @ v

    Args:
        q: (B, heads, Sq, hd).
        k: (B, heads, Sk, hd).
        v: (B, heads, Sk, hd).
        mask: bool broadcastable to (B, heads, Sq, Sk), True = may attend; None = all visible.
        bias: float broadcastable to (B, heads, Sq, Sk); None = zero.

    Returns:
        (B, heads, Sq, hd).
    """
    return torch.matmul(sat_attention_probs(q, k, mask, bias), v)


class KVCache:
    """Per-layer key/value cache with amortised growth.

    Keys and values are stored as (B, heads, S, hd) per layer in preallocated buffers that double
    when full, so decoding does not re-copy the whole cache at every step.
    """

    def __init__(self, num_layers: int, capacity: int = 0) -> None:
        """Args: num_layers; capacity: tokens to allocate room for at the first append (the
        final length when known: no growth, no doubling slack, no copy while growing)."""
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._k: list[Tensor | None] = [None] * num_layers
        self._v: list[Tensor | None] = [None] * num_layers
        self._len: list[int] = [0] * num_layers
        self.capacity = capacity

    @property
    def num_layers(self) -> int:
        """Number of layers the cache was made for."""
        return len(self._k)

    def __len__(self) -> int:
        """Tokens cached (taken from layer 0)."""
        return self._len[0]

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add (B, heads, S_new, hd) keys/values to ``layer``; return all cached (B, heads, S, hd)."""
        n, new = self._len[layer], k.shape[2]
        buf_k, buf_v = self._k[layer], self._v[layer]
        if (
            buf_k is None
            or buf_v is None
            or buf_k.shape[2] < n + new
            or buf_k.shape[0] != k.shape[0]
        ):
            cap = self.capacity if self.capacity >= n + new else max(2 * (n + new), 16)
            grown_k = k.new_empty(k.shape[0], k.shape[1], cap, k.shape[3])
            grown_v = v.new_empty(v.shape[0], v.shape[1], cap, v.shape[3])
            if buf_k is not None and buf_v is not None and n:
                grown_k[:, :, :n] = buf_k[:, :, :n]
                grown_v[:, :, :n] = buf_v[:, :, :n]
            buf_k, buf_v = grown_k, grown_v
            self._k[layer], self._v[layer] = buf_k, buf_v
        buf_k[:, :, n : n + new] = k
        buf_v[:, :, n : n + new] = v
        self._len[layer] = n + new
        return buf_k[:, :, : n + new], buf_v[:, :, : n + new]

    def expand(self, batch_size: int) -> KVCache:
        """A new cache whose batch-1 entries are repeated ``batch_size`` times (prefix broadcast)."""
        out = KVCache(self.num_layers, self.capacity)
        for i, (k, v) in enumerate(zip(self._k, self._v, strict=True)):
            if k is None or v is None:
                continue
            if k.shape[0] != 1:
                raise ValueError(f"expand needs a batch-1 cache, layer {i} has batch {k.shape[0]}")
            n = self._len[i]
            room = max(n, self.capacity)  # keep the preallocated room, for every batch row
            out._k[i] = k.new_empty(batch_size, k.shape[1], room, k.shape[3])
            out._v[i] = v.new_empty(batch_size, v.shape[1], room, v.shape[3])
            out._k[i][:, :, :n] = k[:, :, :n]
            out._v[i][:, :, :n] = v[:, :, :n]
            out._len[i] = n
        return out


@dataclass
class MaskedAttention:
    """The default `AttentionFn`: dense attention with SAT semantics (reference.md §2.3).

    Attributes:
        attention_mask: bool (Sq, Sk) or (B, 1, Sq, Sk), True = may attend, where Sk counts the
            cached tokens plus the new ones; a `RegionMask` (eq. 1 structure, never densified
            beyond ``chunk_size`` query rows); or None = causal.
        attention_bias: float broadcastable to (B, heads, Sq, Sk), added before masking.
        kv_cache: optional `KVCache`; the new keys/values are appended to it.
        chunk_size: query rows per block when ``attention_mask`` is a `RegionMask`.
        use_sdpa: use ``F.scaled_dot_product_attention`` with an additive mask (faster on GPU).
            Equal to the SAT formula except for query rows that see no key at all (SAT gives a
            uniform average there) and for scores within ~10 of -10000; off by default.
    """

    attention_mask: Tensor | RegionMask | None = None
    attention_bias: Tensor | None = None
    kv_cache: KVCache | None = None
    chunk_size: int = 256
    use_sdpa: bool = False

    def __call__(self, module: SelfAttentionLike, hidden: Tensor, layer: int) -> Tensor:
        q, k, v = module.split_heads(module.query_key_value(hidden))  # each (B, h, S, hd)
        if self.kv_cache is not None:
            k, v = self.kv_cache.append(layer, k, v)
        if isinstance(self.attention_mask, RegionMask):
            ctx = self._region_attention(module, q, k, v, self.attention_mask)
        else:
            mask = self._dense_mask(q.shape[2], k.shape[2], q.device)
            ctx = self._attend(module, q, k, v, mask, self.attention_bias)
        return module.dense(module.merge_heads(ctx))

    def _dense_mask(self, sq: int, sk: int, device: torch.device) -> Tensor | None:
        mask = self.attention_mask
        if mask is None:
            if sq == 1:  # a single new token sees the whole cache
                return None
            rows = torch.arange(sk - sq, sk, device=device)[:, None]
            return torch.arange(sk, device=device)[None, :] <= rows  # (Sq, Sk) causal
        assert isinstance(mask, Tensor)
        if mask.dtype != torch.bool:
            raise ValueError(f"attention_mask must be bool (True = may attend), got {mask.dtype}")
        if mask.shape[-2:] != (sq, sk):
            raise ValueError(
                f"attention_mask has shape {tuple(mask.shape)}, expected (..., {sq}, {sk}) "
                "(query length, cached + new key length)"
            )
        return mask

    def _attend(
        self,
        module: SelfAttentionLike,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None,
        bias: Tensor | None,
    ) -> Tensor:
        if self.use_sdpa:
            additive = None
            if mask is not None or bias is not None:
                additive = torch.zeros((), dtype=q.dtype, device=q.device)
                if bias is not None:
                    additive = additive + bias.to(q.dtype)
                if mask is not None:
                    additive = additive.masked_fill(~mask, MASKED_SCORE)
            p = module.attention_dropout if module.training else 0.0
            return F.scaled_dot_product_attention(q, k, v, attn_mask=additive, dropout_p=p)
        probs = module.dropout_probs(sat_attention_probs(q, k, mask, bias))
        return torch.matmul(probs, v)

    def _region_attention(
        self, module: SelfAttentionLike, q: Tensor, k: Tensor, v: Tensor, region: RegionMask
    ) -> Tensor:
        if k.shape[2] != q.shape[2]:
            raise ValueError("a RegionMask cannot be combined with a KV cache")
        outs = []
        for start in range(0, q.shape[2], self.chunk_size):
            stop = min(start + self.chunk_size, q.shape[2])
            mask = region.rows(start, stop)[:, None]  # (B, 1, rows, Sk)
            bias = None
            if self.attention_bias is not None:
                full = self.attention_bias
                full = full.reshape((1,) * max(2 - full.dim(), 0) + tuple(full.shape))
                bias = full.expand(*full.shape[:-2], q.shape[2], k.shape[2])[..., start:stop, :]
            outs.append(self._attend(module, q[:, :, start:stop], k, v, mask, bias))
        return torch.cat(outs, dim=2)  # (B, h, Sq, hd)
