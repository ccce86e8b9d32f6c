"""Token samplers: categorical sampling from logits or probabilities, with optional warpers.

All samplers take logits of any leading shape `(..., vocab)` and return int64 ids of shape `(...)`,
sampling every row independently in one vectorised pass. Randomness comes from one float64 uniform
per row, drawn with `torch.rand(..., generator=generator)`; the same seed gives the same ids. The
uniforms can be injected with `uniforms=` to compare against a reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ._core import (
    check_row_max,
    check_scores,
    compute_dtype,
    draw_uniforms,
    inverse_cdf,
    row_chunks,
)
from .warpers import Processor, WarperList

__all__ = ["TokenSampler", "TopKSampler", "sample", "sample_probs"]


def _uniforms_for(
    scores: torch.Tensor, generator: torch.Generator | None, uniforms: torch.Tensor | None
) -> torch.Tensor:
    """`(rows,)` float64 uniforms on the scores' device: drawn, or the given ones checked."""
    leading = tuple(scores.shape[:-1])
    if uniforms is None:
        return draw_uniforms(leading, generator, scores.device).reshape(-1)
    if tuple(uniforms.shape) != leading:
        raise ValueError(
            f"uniforms must have shape {leading} (one per row), got {tuple(uniforms.shape)}"
        )
    if not bool(((uniforms >= 0) & (uniforms < 1)).all()):
        raise ValueError("uniforms must lie in [0, 1)")
    return uniforms.to(device=scores.device, dtype=torch.float64).reshape(-1)


def sample(
    logits: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample one id per row from `softmax(logits)` over the last dimension.

    Equivalent PyTorch (same distribution, different random stream):
    `torch.multinomial(logits.float().softmax(-1).reshape(-1, V), 1).reshape(logits.shape[:-1])`.

    Args:
        logits: `(..., vocab)` float scores; -inf entries are never sampled.
        generator: source of randomness (None: the global generator of the logits' device).
        uniforms: optional `(...)` uniforms in [0, 1) to use instead of drawing.

    Returns:
        `(...)` int64 ids on the logits' device.

    Raises:
        ValueError: a row contains NaN or +inf, or is entirely -inf.
    """
    check_scores(logits)
    vocab = logits.shape[-1]
    u = _uniforms_for(logits, generator, uniforms)
    flat = logits.reshape(-1, vocab)  # (rows, vocab)
    out = torch.empty(flat.shape[0], dtype=torch.int64, device=logits.device)
    for rows in row_chunks(flat.shape[0], vocab):
        z = flat[rows].to(compute_dtype(logits))
        row_max = z.amax(dim=-1, keepdim=True)
        check_row_max(row_max.squeeze(-1), rows.start)
        out[rows] = inverse_cdf((z - row_max).exp_(), u[rows])  # unnormalised softmax
    return out.reshape(logits.shape[:-1])


def sample_probs(
    probs: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample one id per row with probability proportional to `probs` (rows need not sum to 1).

    Args:
        probs: `(..., vocab)` finite non-negative weights with a positive sum in every row.
        generator: source of randomness.
        uniforms: optional `(...)` uniforms in [0, 1) to use instead of drawing.

    Returns:
        `(...)` int64 ids.

    Raises:
        ValueError: negative, NaN or infinite weights, or a row summing to 0.
    """
    check_scores(probs, "probs")
    vocab = probs.shape[-1]
    if not bool(torch.isfinite(probs).all()) or bool((probs < 0).any()):
        raise ValueError("probs must be finite and non-negative")
    flat = probs.reshape(-1, vocab)
    zero_rows = (flat.sum(-1) <= 0).nonzero()
    if zero_rows.numel():
        raise ValueError(
            f"probs row {int(zero_rows[0, 0])} (flattened) sums to 0: nothing to sample"
        )
    u = _uniforms_for(probs, generator, uniforms)
    return inverse_cdf(flat, u).reshape(probs.shape[:-1])


@dataclass(frozen=True, eq=False)
class TokenSampler:
    """Warp logits, then sample one id per row: `sampler(logits, generator) -> ids`.

    Args:
        warpers: warpers applied in order (e.g. `[IdMask(...), Temperature(0.9), TopP(0.95)]`).

    Fits the generation-loop signature `Callable[[Tensor (B, V), Generator | None], LongTensor (B,)]`
    and takes logits of any leading shape.
    """

    warpers: Sequence[Processor] = ()
    _chain: WarperList = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        chain = WarperList(self.warpers)
        object.__setattr__(self, "warpers", chain.warpers)
        object.__setattr__(self, "_chain", chain)

    def __call__(
        self,
        logits: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        uniforms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample `(...)` ids from `(..., vocab)` logits; see :func:`sample`."""
        check_scores(logits)
        return sample(self._chain(logits), generator, uniforms=uniforms)


@dataclass(frozen=True)
class TopKSampler:
    """Plain top-k sampling (CogView2 ITERSR): `softmax(top_k(logits / temperature))`.

    Keeps every logit >= the k-th largest of its row (ties at the threshold kept; -inf elsewhere),
    exactly like `TokenSampler([Temperature(t), TopK(k)])`, but samples among the kept ids only, so
    the cost is one `topk` per row instead of a full-vocabulary cumulative sum. `top_k` larger than
    the vocabulary keeps everything.

    Args:
        top_k: number of ids kept per row (>= 1). ITERSR uses 40, 40, 40, 20, 20, 10.
        temperature: divides the logits first (> 0). ITERSR uses 1.0.
    """

    top_k: int
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be an int >= 1, got {self.top_k!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature}")

    def __call__(
        self,
        logits: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        uniforms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample `(...)` int64 ids from `(..., vocab)` logits.

        Raises:
            ValueError: a row contains NaN or +inf, or is entirely -inf.
        """
        check_scores(logits)
        vocab = logits.shape[-1]
        k = min(self.top_k, vocab)
        u = _uniforms_for(logits, generator, uniforms)
        flat = logits.reshape(-1, vocab)  # (rows, vocab)
        out = torch.empty(flat.shape[0], dtype=torch.int64, device=logits.device)
        for rows in row_chunks(flat.shape[0], vocab):
            z = flat[rows].to(compute_dtype(logits)) / self.temperature
            values, index = z.topk(k, dim=-1)  # (n, k), sorted descending
            check_row_max(values[:, 0], rows.start)
            # (n,) ties at the threshold included; int32 (not the default int64) halves the
            # temporary copy of the mask that the sum makes
            kept = (z >= values[:, -1:]).sum(-1, dtype=torch.int32)
            width = int(kept.max())
            if width > k:
                values, index = z.topk(width, dim=-1)  # (n, width)
            valid = torch.arange(width, device=z.device) < kept.unsqueeze(-1)  # (n, width)
            # Order the kept ids by id, as a full-vocabulary CDF would; padding sorts last.
            index, order = index.masked_fill(~valid, vocab).sort(dim=-1)
            values = values.gather(-1, order)
            weights = (
                (values - values.amax(-1, keepdim=True)).exp_().masked_fill_(index == vocab, 0)
            )
            pick = inverse_cdf(weights, u[rows])  # (n,)
            out[rows] = index.gather(-1, pick.unsqueeze(-1)).squeeze(-1)
        return out.reshape(logits.shape[:-1])
