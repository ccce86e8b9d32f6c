"""Cached autoregressive generation in the style of SAT ``filling_sequence`` (reference.md §3.3).

One loop covers stage-1 text-to-image (§3.3), completion/infilling (§7.3: known tokens after the
prefix are fed without sampling; each -1 slot is sampled from the previous position's logits) and
captioning (text generation that stops at ``stop_ids``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
        use_cache: False recomputes the whole sequence at every step (reference path).
        progress: show a tqdm bar.

    Returns:
        (B, T) long: ``tokens`` with the -1 slots filled (except after a stop).
    """
    _validate(tokens, position_ids, attention_mask, attention_bias)
    device = tokens.device
    out = tokens.clone()
    batch, total = out.shape
    unknown_cols = (out == UNKNOWN).any(0).nonzero()
    if unknown_cols.numel() == 0:
        return out
    prefix = int(unknown_cols[0])
    stop = torch.tensor(list(stop_ids), dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    pos = position_ids if position_ids.dim() == 2 else position_ids.expand(batch, -1)
    lo = logits_range[0] if logits_range is not None else 0

    def bias_block(rows: slice, cols: slice) -> Tensor | None:
        return None if attention_bias is None else attention_bias[rows, cols]

    def full_pass(end: int) -> Tensor:  # (B, H) hidden of position end - 1
        h = model(
            out[:, :end].clamp_min(0),
            pos[:, :end],
            attention_mask=attention_mask[:end, :end],
            attention_bias=bias_block(slice(0, end), slice(0, end)),
            return_logits=False,
        ).hidden_states
        return h[:, -1]

    cache: KVCache | None = None
    if use_cache:
        cache = model.new_kv_cache(capacity=total)  # the final length: no growth copies
        shared = bool(
            (out[:, :prefix] == out[:1, :prefix]).all()
            and (pos[:, :prefix] == pos[:1, :prefix]).all()
        )
        rows = 1 if shared else batch
        h_last = model(
            out[:rows, :prefix],
            pos[:rows, :prefix],
            attention_mask=attention_mask[:prefix, :prefix],
            attention_bias=bias_block(slice(0, prefix), slice(0, prefix)),
            kv_cache=cache,
            return_logits=False,
        ).hidden_states[:, -1]
        if shared and batch > 1:
            cache, h_last = cache.expand(batch), h_last.expand(batch, -1)
    else:
        h_last = full_pass(prefix)

    steps = range(prefix, total)
    for t in tqdm(steps, disable=not progress, desc="generate"):
        need = (out[:, t] == UNKNOWN) & ~finished
        if need.any():
            sampled = _sample(model, h_last, sampler, generator, logits_range, allowed_ids) + lo
            out[:, t] = torch.where(need, sampled, out[:, t])
            if stop.numel():
                finished |= need & torch.isin(sampled, stop)
                if finished.all():
                    break
        if t == total - 1:
            break
        if cache is not None:
            h_last = model(
                out[:, t : t + 1].clamp_min(0),
                pos[:, t : t + 1],
                attention_mask=attention_mask[t : t + 1, : t + 1],
                attention_bias=bias_block(slice(t, t + 1), slice(0, t + 1)),
                kv_cache=cache,
                return_logits=False,
            ).hidden_states[:, -1]
        else:
            h_last = full_pass(t + 1)
    return out


def _sample(
    model: CogLM,
    hidden: Tensor,
    sampler: Sampler,
    generator: torch.Generator | None,
    logits_range: tuple[int, int] | None,
    allowed_ids: Tensor | None,
) -> Tensor:
    logits = model.logits(hidden, logits_range)  # (B, V') float32
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
