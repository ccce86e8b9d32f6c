"""Cached autoregressive generation in the style of SAT ``filling_sequence`` (reference.md §3.3).

One loop covers stage-1 text-to-image (§3.3), completion/infilling (§7.3: known tokens after the
prefix are fed without sampling; each -1 slot is sampled from the previous position's logits) and
captioning (text generation that stops at ``stop_ids``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .attention import KVCache
from .transformer import CogLM

Sampler = Callable[[Tensor, "torch.Generator | None"], Tensor]
"""``sampler(logits (B, V') float32, generator) -> (B,) long indices in [0, V')``."""

UNKNOWN = -1
"""Token value of a slot to be generated."""


def multinomial_sampler(temperature: float = 1.0) -> Sampler:
    """A plain sampler: ``multinomial(softmax(logits / temperature))``, one draw per row."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")

    def sample(logits: Tensor, generator: torch.Generator | None) -> Tensor:
        probs = torch.softmax(logits.float() / temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    return sample


def _validate(
    tokens: Tensor, position_ids: Tensor, attention_mask: Tensor, attention_bias: Tensor | None
) -> None:
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(
            f"tokens must be a (B, T) long tensor, got {tokens.dtype} {tuple(tokens.shape)}"
        )
    t = tokens.shape[1]
    if position_ids.shape not in ((t,), tokens.shape):
        raise ValueError(f"position_ids must be ({t},) or {tuple(tokens.shape)}")
    if attention_mask.shape != (t, t) or attention_mask.dtype != torch.bool:
        raise ValueError(f"attention_mask must be a ({t}, {t}) bool tensor")
    if attention_bias is not None and attention_bias.shape != (t, t):
        raise ValueError(f"attention_bias must be ({t}, {t}), got {tuple(attention_bias.shape)}")
    if (tokens < UNKNOWN).any():
        raise ValueError("tokens must be >= 0, or -1 for slots to generate")
    if (tokens[:, 0] == UNKNOWN).any():
        raise ValueError("the first token must be known (there is nothing to predict it from)")


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance (Ho & Salimans 2022; not in the CogView2 release).

    A second, unconditional sequence is decoded beside the prompted one and every sampled
    position uses ``u + scale · (c − u)`` of the two logit rows (c: prompted, u: unconditional).
    The unconditional sequence is its own known ``prefix`` (e.g. ``[BOI]`` alone for a model
    trained with text dropout) followed by the same slots as the prompted sequence after its
    prefix: whatever the prompted sequence receives there, sampled or known, it receives too.

    Attributes:
        prefix: (P_u,) long, the known unconditional prefix (the same for every row).
        position_ids: (P_u + n,) long, where n = T − P is the prompted sequence's length after
            its own prefix.
        attention_mask: (P_u + n, P_u + n) bool, True = may attend.
        scale: Guidance scale; 1 is plain sampling (the unconditional sequence is not run),
            0 samples from the unconditional model.
        attention_bias: (P_u + n, P_u + n) float added to the scores, or None.
    """

    prefix: Tensor
    position_ids: Tensor
    attention_mask: Tensor
    scale: float
    attention_bias: Tensor | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.scale) or self.scale < 0:
            raise ValueError(f"guidance scale must be finite and >= 0, got {self.scale}")
        if self.prefix.dim() != 1 or self.prefix.numel() == 0 or self.prefix.dtype != torch.long:
            raise ValueError("guidance prefix must be a non-empty (P_u,) long tensor")
        if bool((self.prefix < 0).any()):
            raise ValueError("guidance prefix must hold known tokens (>= 0)")

    def tokens(self, batch: int, tail: int) -> Tensor:
        """(batch, P_u + tail) long: the prefix, then -1 slots that mirror the prompted tail."""
        total = self.prefix.numel() + tail
        if self.position_ids.shape != (total,):
            raise ValueError(f"guidance position_ids must be ({total},) for a tail of {tail}")
        out = torch.full((batch, total), UNKNOWN, dtype=torch.long, device=self.prefix.device)
        out[:, : self.prefix.numel()] = self.prefix
        return out


class _Stream:
    """One sequence under decoding: its tokens and either a KV cache or full recomputation.

    The caller validates the inputs (`_validate`).
    """

    def __init__(
        self,
        model: CogLM,
        tokens: Tensor,
        position_ids: Tensor,
        attention_mask: Tensor,
        attention_bias: Tensor | None,
        use_cache: bool,
    ) -> None:
        self.model, self.tokens = model, tokens
        self.mask, self.bias = attention_mask, attention_bias
        batch, total = tokens.shape
        self.pos = position_ids if position_ids.dim() == 2 else position_ids.expand(batch, -1)
        self.cache = model.new_kv_cache(capacity=total) if use_cache else None  # no growth copies

    def _bias(self, rows: slice, cols: slice) -> Tensor | None:
        return None if self.bias is None else self.bias[rows, cols]

    def _run(self, rows: int, cols: slice, cache: KVCache | None) -> Tensor:
        """(rows, H) hidden state of column ``cols.stop - 1``, feeding ``cols`` of every row."""
        q = slice(0 if cache is None else cols.start, cols.stop)
        return self.model(
            self.tokens[:rows, q].clamp_min(0),
            self.pos[:rows, q],
            attention_mask=self.mask[q, : cols.stop],
            attention_bias=self._bias(q, slice(0, cols.stop)),
            kv_cache=cache,
            return_logits=False,
        ).hidden_states[:, -1]

    def start(self, prefix: int) -> Tensor:
        """Run the known ``prefix`` columns; (B, H) hidden state of the last one.

        A prefix identical across the batch runs at batch 1 and its KV cache is broadcast.
        """
        batch = self.tokens.shape[0]
        if self.cache is None:
            return self._run(batch, slice(0, prefix), None)
        shared = bool(
            (self.tokens[:, :prefix] == self.tokens[:1, :prefix]).all()
            and (self.pos[:, :prefix] == self.pos[:1, :prefix]).all()
        )
        h = self._run(1 if shared else batch, slice(0, prefix), self.cache)
        if shared and batch > 1:
            self.cache, h = self.cache.expand(batch), h.expand(batch, -1)
        return h

    def feed(self, t: int) -> Tensor:
        """Feed column ``t`` (already filled); (B, H) hidden state of it."""
        return self._run(self.tokens.shape[0], slice(t, t + 1), self.cache)


@torch.no_grad()
def generate(
    model: CogLM,
    tokens: Tensor,
    position_ids: Tensor,
    *,
    attention_mask: Tensor,
    sampler: Sampler,
    attention_bias: Tensor | None = None,
    generator: torch.Generator | None = None,
    logits_range: tuple[int, int] | None = None,
    allowed_ids: Tensor | None = None,
    stop_ids: Sequence[int] = (),
    guidance: Guidance | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> Tensor:
    """Fill every -1 slot of ``tokens`` autoregressively.

    The known prefix (up to the first -1) is run once; when it is identical across the batch it
    runs at batch 1 and its KV cache is broadcast. Then every later position is fed one at a time:
    a known token is fed as is, a -1 slot is first sampled from the previous position's logits.

    Args:
        model: the `CogLM` (eval mode is the caller's job).
        tokens: (B, T) long; -1 marks slots to generate; column 0 must be known.
        position_ids: (T,) or (B, T) long.
        attention_mask: (T, T) bool, True = may attend (e.g. `text_image_generation_mask`).
        sampler: ``(logits (B, V') float32, generator) -> (B,) long`` in ``[0, V')``.
        attention_bias: (T, T) float added to the scores before masking (eq. 7 upweighting,
            `text_upweighting_bias`), or None.
        generator: passed to the sampler.
        logits_range: ``(lo, hi)``: logits only for vocabulary rows ``[lo, hi)``; the sampled
            index is offset by ``lo``. None = full vocabulary.
        allowed_ids: bool (V',) or (B, V'): False columns get -inf logits before sampling.
        stop_ids: a row that samples one of these ids is finished; its later -1 slots stay -1.
            The loop ends early once every row is finished.
        guidance: classifier-free guidance (`Guidance`), or None.
        use_cache: False recomputes the whole sequence at every step (reference path).
        progress: show a tqdm bar.

    Returns:
        (B, T) long: ``tokens`` with the -1 slots filled (except after a stop).
    """
    _validate(tokens, position_ids, attention_mask, attention_bias)
    out = tokens.clone()
    batch, total = out.shape
    unknown_cols = (out == UNKNOWN).any(0).nonzero()
    if unknown_cols.numel() == 0:
        return out
    prefix = int(unknown_cols[0])
    stop = torch.tensor(list(stop_ids), dtype=torch.long, device=out.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=out.device)
    lo = logits_range[0] if logits_range is not None else 0

    main = _Stream(model, out, position_ids, attention_mask, attention_bias, use_cache)
    h_last = main.start(prefix)
    uncond, shift, h_uncond = None, 0, None
    if guidance is not None and guidance.scale != 1.0:
        u_tokens = guidance.tokens(batch, total - prefix)
        _validate(u_tokens, guidance.position_ids, guidance.attention_mask, guidance.attention_bias)
        shift = prefix - guidance.prefix.numel()  # prompted column t is unconditional t - shift
        uncond = _Stream(
            model,
            u_tokens,
            guidance.position_ids,
            guidance.attention_mask,
            guidance.attention_bias,
            use_cache,
        )
        h_uncond = uncond.start(guidance.prefix.numel())

    def logits_at(h: Tensor, h_u: Tensor | None) -> Tensor:  # (B, V') float32
        c = model.logits(h, logits_range)
        if h_u is None:
            return c
        u = model.logits(h_u, logits_range)
        return u + guidance.scale * (c - u)  # type: ignore[union-attr]

    # counted by hand: the loop leaves by `break` after its last token, which a tqdm-wrapped
    # iterator would not count (the bar would end at total - 1)
    bar = tqdm(total=total - prefix, disable=not progress, desc="generate")
    for t in range(prefix, total):
        need = (out[:, t] == UNKNOWN) & ~finished
        if need.any():
            logits = logits_at(h_last, h_uncond)
            sampled = _sample(logits, sampler, generator, allowed_ids) + lo
            out[:, t] = torch.where(need, sampled, out[:, t])
            if stop.numel():
                finished |= need & torch.isin(sampled, stop)
        bar.update()
        if t == total - 1 or (stop.numel() and bool(finished.all())):
            break
        h_last = main.feed(t)
        if uncond is not None:
            uncond.tokens[:, t - shift] = out[:, t]
            h_uncond = uncond.feed(t - shift)
    bar.close()
    return out


def _sample(
    logits: Tensor,
    sampler: Sampler,
    generator: torch.Generator | None,
    allowed_ids: Tensor | None,
) -> Tensor:
    if allowed_ids is not None:
        if allowed_ids.dtype != torch.bool or allowed_ids.shape[-1] != logits.shape[-1]:
            raise ValueError(f"allowed_ids must be bool (..., {logits.shape[-1]})")
        logits = logits.masked_fill(~allowed_ids, float("-inf"))
    idx = sampler(logits, generator)
    if idx.shape != logits.shape[:1]:
        raise ValueError(
            f"sampler returned shape {tuple(idx.shape)}, expected ({logits.shape[0]},)"
        )
    if idx.numel() and (idx.min() < 0 or idx.max() >= logits.shape[-1]):
        raise ValueError(f"sampler returned indices outside [0, {logits.shape[-1]})")
    return idx.long()
