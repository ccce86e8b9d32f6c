"""`CogLM`: embeddings, sandwich-LN layers, final LayerNorm and the tied output head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .attention import AttentionFn, KVCache, MaskedAttention
from .config import CogLMConfig
from .layers import CogLMLayer, LayerNorm, init_weights
from .masks import RegionMask
from .quantization import Int8Linear

HEAD_CHUNK_ROWS = 4096
"""Vocabulary rows cast to float32 at a time by `CogLM.logits` (a whole float32 copy of the
release's 150,010 × 3072 table would be a 1.8 GB transient; a chunk is 50 MB)."""


@dataclass
class CogLMOutput:
    """Result of `CogLM.forward`.

    Attributes:
        logits: (B, S, V') float32, ``V' = hi - lo`` of ``logits_range`` (or vocab_size);
            None when ``return_logits=False``.
        hidden_states: (B, S, H) after ``final_layernorm``.
        all_hidden_states: the embedding output and each layer's output, (B, S, H) each, when
            ``output_hidden_states=True``.
        kv_cache: the cache passed in (now extended), or None.
    """

    logits: Tensor | None
    hidden_states: Tensor
    all_hidden_states: tuple[Tensor, ...] | None = None
    kv_cache: KVCache | None = None


def _embedding(num: int, dim: int, skip_init: bool) -> nn.Embedding:
    """An embedding table; ``skip_init`` leaves it uninitialised (on the meta device
    ``nn.init.normal_`` imports torch's Python reference kernels, about 1.5 s, for nothing)."""
    if skip_init:
        return nn.Embedding(num, dim, _weight=torch.empty(num, dim))
    return nn.Embedding(num, dim)


class Transformer(nn.Module):
    """The ``transformer.*`` subtree of the SAT state dict."""

    def __init__(self, config: CogLMConfig, *, skip_init: bool = False) -> None:
        super().__init__()
        self.word_embeddings = _embedding(config.vocab_size, config.hidden_size, skip_init)
        self.position_embeddings = _embedding(
            config.max_sequence_length, config.hidden_size, skip_init
        )
        self.layers = nn.ModuleList(CogLMLayer(config) for _ in range(config.num_layers))
        self.final_layernorm = LayerNorm(config.hidden_size, eps=config.layernorm_epsilon)


class CogLM(nn.Module):
    """The CogLM transformer (reference.md §2). ``state_dict()`` keys equal the SAT keys.

    Args:
        config: architecture and layout.
        device: where to allocate parameters (``"meta"`` to allocate nothing, e.g. before loading).
        dtype: parameter dtype.

    Attributes:
        gradient_checkpointing: recompute each layer in the backward pass (saves activations).
    """

    def __init__(
        self,
        config: CogLMConfig,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        meta = torch.device(device or "cpu").type == "meta"
        with torch.device(device or "cpu"):
            self.transformer = Transformer(config, skip_init=meta)
        if not meta:
            init_weights(self, config)
        if dtype is not None:
            self.to(dtype)

    # ------------------------------------------------------------------------------- pieces
    def embed(self, input_ids: Tensor, position_ids: Tensor) -> Tensor:
        """``word_embeddings[input_ids] + position_embeddings[position_ids]``.

        Args:
            input_ids: (B, S) long in ``[0, vocab_size)``.
            position_ids: (B, S) or (S,) long in ``[0, max_sequence_length)``.

        Returns:
            (B, S, H) in the parameter dtype (before embedding dropout).
        """
        t = self.transformer
        return t.word_embeddings(input_ids) + t.position_embeddings(position_ids)

    def logits(self, hidden: Tensor, logits_range: tuple[int, int] | None = None) -> Tensor:
        """Tied output head ``hidden · E[lo:hi]ᵀ`` computed in float32 (float64 for a float64 model).

        Args:
            hidden: (..., H), normally the ``hidden_states`` of `forward`.
            logits_range: ``(lo, hi)`` restricts the logits to vocabulary rows ``[lo, hi)``
                (e.g. ``(0, num_image_tokens)`` for image generation). None = all rows.

        Returns:
            (..., hi - lo) float32 (or float64).
        """
        weight = self.transformer.word_embeddings.weight
        if logits_range is not None:
            lo, hi = logits_range
            if not 0 <= lo < hi <= weight.shape[0]:
                raise ValueError(
                    f"logits_range={logits_range} must satisfy 0 <= lo < hi <= {weight.shape[0]}"
                )
            weight = weight[lo:hi]
        dtype = torch.promote_types(weight.dtype, torch.float32)
        hidden = hidden.to(dtype)
        if weight.dtype == dtype:
            return F.linear(hidden, weight)
        out = hidden.new_empty(*hidden.shape[:-1], weight.shape[0])
        for lo in range(0, weight.shape[0], HEAD_CHUNK_ROWS):
            rows = weight[lo : lo + HEAD_CHUNK_ROWS]
            out[..., lo : lo + rows.shape[0]] = F.linear(hidden, rows.to(dtype))
        return out

    # ------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: Tensor | None,
        position_ids: Tensor | None,
        *,
        attention_mask: Tensor | RegionMask | None = None,
        attention_bias: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        attention_fn: AttentionFn | None = None,
        kv_cache: KVCache | None = None,
        logits_range: tuple[int, int] | None = None,
        output_hidden_states: bool = False,
        return_logits: bool = True,
        logits_mask: Tensor | None = None,
    ) -> CogLMOutput:
        """Run the transformer.

        Args:
            input_ids: (B, S) long; may be None when ``inputs_embeds`` is given.
            position_ids: (B, S) or (S,) long; may be None when ``inputs_embeds`` is given.
            attention_mask: bool (Sq, Sk) or (B, 1, Sq, Sk), True = may attend (Sk includes
                cached tokens), or a `RegionMask`; None = causal.
            attention_bias: float broadcastable to (B, heads, Sq, Sk), added to the scores
                before masking (paper eq. 7).
            inputs_embeds: (B, S, H) replaces the word + position embedding (the SR models
                use their own position table).
            attention_fn: custom `AttentionFn`; it then owns masking and caching, so
                ``attention_mask``/``attention_bias``/``kv_cache`` must be None.
            kv_cache: `KVCache` to read from and extend (default attention only).
            logits_range: ``(lo, hi)`` vocabulary rows of the logits (see `logits`).
            output_hidden_states: also return every layer's input/output.
            return_logits: compute logits (skip for hidden-state-only uses).
            logits_mask: (B, S) bool: compute logits only at these positions; ``logits`` is
                then (N, V') with N = ``logits_mask.sum()`` in row-major order (training uses the
                loss mask, which skips the head for uncounted positions).

        Returns:
            `CogLMOutput`.
        """
        if inputs_embeds is None:
            if input_ids is None or position_ids is None:
                raise ValueError("give input_ids and position_ids, or inputs_embeds")
            self._check_ids(input_ids, position_ids)
            hidden = self.embed(input_ids, position_ids)
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
                raise ValueError(
                    f"inputs_embeds must be (B, S, {self.config.hidden_size}), "
                    f"got {tuple(inputs_embeds.shape)}"
                )
            hidden = inputs_embeds
        if attention_fn is None:
            attention_fn = MaskedAttention(attention_mask, attention_bias, kv_cache)
        elif attention_mask is not None or attention_bias is not None or kv_cache is not None:
            raise ValueError(
                "attention_fn owns masking and caching: pass attention_mask, attention_bias "
                "and kv_cache to it, not to forward"
            )
        hidden = F.dropout(hidden, self.config.hidden_dropout, self.training)
        states: list[Tensor] | None = [hidden] if output_hidden_states else None
        for index, layer in enumerate(self.transformer.layers):
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden = checkpoint(layer, hidden, attention_fn, index, use_reentrant=False)
            else:
                hidden = layer(hidden, attention_fn, index)
            if states is not None:
                states.append(hidden)
        hidden = self.transformer.final_layernorm(hidden)
        logits = None
        if return_logits:
            selected = hidden if logits_mask is None else hidden[logits_mask]  # (B, S, H) | (N, H)
            logits = self.logits(selected, logits_range)
        return CogLMOutput(
            logits=logits,
            hidden_states=hidden,
            all_hidden_states=tuple(states) if states is not None else None,
            kv_cache=kv_cache,
        )

    def _check_ids(self, input_ids: Tensor, position_ids: Tensor) -> None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, S), got {tuple(input_ids.shape)}")
        if position_ids.shape not in (input_ids.shape, input_ids.shape[1:]):
            raise ValueError(
                f"position_ids must be (B, S) or (S,) matching input_ids {tuple(input_ids.shape)}, "
                f"got {tuple(position_ids.shape)}"
            )
        if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= self.config.vocab_size):
            raise ValueError(
                f"input_ids must be in [0, {self.config.vocab_size}); got range "
                f"[{int(input_ids.min())}, {int(input_ids.max())}] (-1 marks slots to generate: "
                "use generate())"
            )
        limit = self.config.max_sequence_length
        if position_ids.numel() and (position_ids.min() < 0 or position_ids.max() >= limit):
            raise ValueError(f"position_ids must be in [0, {limit})")

    @property
    def device(self) -> torch.device:
        """Where the weights are (the word embeddings' device; every weight is on one)."""
        return self.transformer.word_embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the weights (the word embeddings')."""
        return self.transformer.word_embeddings.weight.dtype

    def new_kv_cache(self, capacity: int = 0) -> KVCache:
        """An empty `KVCache` for this model, with room for ``capacity`` tokens per layer."""
        return KVCache(self.config.num_layers, capacity)

    def num_parameters(self) -> int:
        """Total parameter count; after `quantize_linears_int8` it is unchanged (the weights and
        biases of an `Int8Linear` are buffers but are counted)."""
        quantised = sum(
            m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
            for m in self.modules()
            if isinstance(m, Int8Linear)
        )
        return sum(p.numel() for p in self.parameters()) + quantised
