"""Logits warpers: temperature, top-k, top-p, min-p, id masks, and a list that composes them.

Each warper maps `scores -> scores` out of place, over the last dimension, for any leading shape.
Each is also a logits processor in the convention of other generation libraries
(`processor(input_ids, scores) -> scores`, as HF `LogitsProcessor` and vLLM): called with two
arguments, the first (`input_ids`) is ignored. Removed entries are set to `fill_value` (-inf by
default), so they get probability exactly 0 after a softmax.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch

from ._core import check_scores

__all__ = ["IdMask", "LogitsWarper", "MinP", "Temperature", "TopK", "TopP", "WarperList"]

_NEG_INF = float("-inf")


def _split_args(args: tuple[torch.Tensor | None, ...]) -> torch.Tensor:
    if len(args) == 1:
        scores = args[0]
    elif len(args) == 2:
        scores = args[1]  # (input_ids, scores): the logits-processor convention
    else:
        raise TypeError(
            f"a warper takes (scores) or (input_ids, scores), got {len(args)} arguments"
        )
    if scores is None:
        raise ValueError("scores must be a tensor, got None")
    check_scores(scores, "scores")
    return scores


class LogitsWarper(abc.ABC):
    """Base class: `warper(scores)` or `warper(input_ids, scores)` returns warped scores."""

    def __call__(self, *args: torch.Tensor | None) -> torch.Tensor:
        """Warp `scores` of shape `(..., vocab)`; returns a new tensor of the same shape and dtype."""
        return self.warp(_split_args(args))

    @abc.abstractmethod
    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        """Warp `(..., vocab)` scores (already validated as a float tensor)."""


@dataclass(frozen=True)
class Temperature(LogitsWarper):
    """Divide scores by `temperature` (> 0): below 1 sharpens, above 1 flattens."""

    temperature: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature}")

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        return scores / self.temperature


@dataclass(frozen=True)
class TopK(LogitsWarper):
    """Keep scores >= the k-th largest of their row; ties at the threshold are all kept.

    This is CogView2's `top_k_logits_` (ITERSR): `scores < topk(scores, k)[..., -1:]` is removed.
    `k` larger than the vocabulary keeps everything (clamped, as HF does).
    """

    k: int
    fill_value: float = _NEG_INF

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k must be an int >= 1, got {self.k!r}")

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.k, scores.shape[-1])
        threshold = scores.topk(k, dim=-1).values[..., -1:]  # (..., 1)
        return scores.masked_fill(scores < threshold, self.fill_value)


@dataclass(frozen=True)
class TopP(LogitsWarper):
    """Nucleus filtering: keep the most probable tokens until their mass exceeds `p`.

    Sorted by probability, token `i` is removed when the mass of the tokens before it is already
    `> p` (CogView2's `top_k_logits(top_p=...)` and HF `TopPLogitsWarper`). The first
    `min_tokens_to_keep` tokens are always kept. `p >= 1` keeps everything.
    """

    p: float
    min_tokens_to_keep: int = 1
    fill_value: float = _NEG_INF

    def __post_init__(self) -> None:
        if not (0 < self.p <= 1):
            raise ValueError(f"p must be in (0, 1], got {self.p}")
        if self.min_tokens_to_keep < 1:
            raise ValueError(f"min_tokens_to_keep must be >= 1, got {self.min_tokens_to_keep}")

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        if self.p >= 1:
            return scores.clone()
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        probs = sorted_scores.float().softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # (..., vocab), exclusive prefix sums
        remove_sorted = mass_before > self.p
        remove_sorted[..., : self.min_tokens_to_keep] = False
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        return scores.masked_fill(remove, self.fill_value)


@dataclass(frozen=True)
class MinP(LogitsWarper):
    """Keep tokens whose probability is >= `p` times the row's largest probability (HF `MinP`)."""

    p: float
    fill_value: float = _NEG_INF

    def __post_init__(self) -> None:
        if not (0 <= self.p <= 1):
            raise ValueError(f"p must be in [0, 1], got {self.p}")

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        probs = scores.float().softmax(dim=-1)
        threshold = self.p * probs.amax(dim=-1, keepdim=True)
        return scores.masked_fill(probs < threshold, self.fill_value)


Range = tuple[int, int] | slice


def _ranges_to_mask(vocab_size: int, ranges: Iterable[Range]) -> torch.Tensor:
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    for item in ranges:
        if isinstance(item, slice):
            start, stop, step = item.indices(vocab_size)
            mask[start:stop:step] = True
            continue
        start, stop = item
        if not 0 <= start <= stop <= vocab_size:
            raise ValueError(
                f"id range ({start}, {stop}) must satisfy 0 <= start <= stop <= vocab_size={vocab_size}"
            )
        mask[start:stop] = True
    return mask


@dataclass(frozen=True, eq=False)
class IdMask(LogitsWarper):
    """Keep only allowed ids: `scores[..., ~allowed] = fill_value`.

    Args:
        allowed: `(vocab,)` bool tensor, True where an id may be sampled.

    Build from id ranges with :meth:`allow_ranges` (e.g. only image ids `[(0, 20000)]`, or only
    English text `[(20000, 83823)]` in the icetk layout) or :meth:`block_ranges` (CogView2's
    `invalid_slices`, e.g. `[slice(20000, None)]`). The vocabulary size of the scores must equal
    `len(allowed)`.
    """

    allowed: torch.Tensor
    fill_value: float = _NEG_INF
    _per_device: dict[torch.device, torch.Tensor] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        allowed = self.allowed
        if (
            not isinstance(allowed, torch.Tensor)
            or allowed.dtype != torch.bool
            or allowed.ndim != 1
        ):
            raise ValueError("allowed must be a 1-D bool tensor of length vocab_size")
        if not bool(allowed.any()):
            raise ValueError("allowed masks out every id: nothing could be sampled")
        object.__setattr__(self, "allowed", allowed.detach().to("cpu"))

    @classmethod
    def allow_ranges(
        cls, vocab_size: int, ranges: Iterable[Range], fill_value: float = _NEG_INF
    ) -> IdMask:
        """Allow only the ids in `ranges` (half-open `(start, stop)` pairs or slices)."""
        return cls(_ranges_to_mask(vocab_size, ranges), fill_value)

    @classmethod
    def block_ranges(
        cls, vocab_size: int, ranges: Iterable[Range], fill_value: float = _NEG_INF
    ) -> IdMask:
        """Allow every id except those in `ranges` (half-open `(start, stop)` pairs or slices)."""
        return cls(~_ranges_to_mask(vocab_size, ranges), fill_value)

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        if scores.shape[-1] != self.allowed.numel():
            raise ValueError(
                f"scores have {scores.shape[-1]} columns but the id mask covers {self.allowed.numel()} ids"
            )
        allowed = self._per_device.get(scores.device)
        if allowed is None:
            allowed = self.allowed.to(scores.device)
            self._per_device[scores.device] = allowed
        return scores.masked_fill(~allowed, self.fill_value)


Processor = Callable[..., torch.Tensor]


@dataclass(frozen=True, eq=False)
class WarperList(LogitsWarper):
    """Apply warpers in order; itself a warper (and a logits processor).

    Members may be any callables following the same convention, e.g. HF logits processors: called as
    `warpers(input_ids, scores)`, each member gets `(input_ids, scores)`; called as `warpers(scores)`,
    each gets `(scores)`.
    """

    warpers: Sequence[Processor] = ()

    def __post_init__(self) -> None:
        warpers = tuple(self.warpers)
        for warper in warpers:
            if not callable(warper):
                raise ValueError(f"every warper must be callable, got {type(warper).__name__}")
        object.__setattr__(self, "warpers", warpers)

    def __call__(self, *args: torch.Tensor | None) -> torch.Tensor:
        scores = _split_args(args)
        prefix = args[:-1]
        for warper in self.warpers:
            scores = warper(*prefix, scores)
        return scores

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        return self(scores)

    def __len__(self) -> int:
        return len(self.warpers)
