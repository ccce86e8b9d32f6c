"""Attention masks as pure functions (bool tensors, True = may attend).

* `coglm_attention_mask` — paper eq. (1) for a set of mask regions;
* `RegionMask` — the same mask in O(L) memory (a per-token "in a region" flag), for training;
* `text_image_generation_mask` — stage-1 generation (reference.md §3.2);
* `inverse_prompt_mask` — caption scoring (§3.6);
* `completion_mask` — text-guided infilling (§7.3);
* `text_upweighting_bias` — the additive bias of paper eq. (7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Region = tuple[int, int]
"""A half-open span ``(start, end)`` of sequence positions. Paper eq. (1) writes closed
intervals ``[l, r]``; ``[l, r]`` is ``(l, r + 1)`` here."""


def _check_regions(seq_len: int, regions: Sequence[Region]) -> list[Region]:
    if seq_len <= 0:
        raise ValueError(f"seq_len must be > 0, got {seq_len}")
    out = []
    for region in regions:
        start, end = (int(x) for x in region)
        if not 0 <= start < end <= seq_len:
            raise ValueError(
                f"region {region} must satisfy 0 <= start < end <= seq_len={seq_len} "
                "(half-open [start, end))"
            )
        out.append((start, end))
    return out


def region_flags(
    seq_len: int, regions: Sequence[Region], device: torch.device | None = None
) -> Tensor:
    """(L,) bool: True where the position lies inside any region."""
    flags = torch.zeros(seq_len, dtype=torch.bool, device=device)
    for start, end in _check_regions(seq_len, regions):
        flags[start:end] = True
    return flags


def coglm_attention_mask(
    seq_len: int, regions: Sequence[Region], *, device: torch.device | None = None
) -> Tensor:
    """Paper eq. (1): the CogLM attention mask for mask regions ``regions``.

    ``A[i, j] = 1`` if j is in no region (context is visible to every token), or if ``j <= i`` and
    both i and j are in (possibly different) regions; otherwise 0.

    Args:
        seq_len: L.
        regions: half-open ``(start, end)`` spans; may overlap or touch.
        device: device of the result.

    Returns:
        (L, L) bool, True = may attend.
    """
    return RegionMask(region_flags(seq_len, regions, device)[None]).dense()[0]


@dataclass(frozen=True)
class RegionMask:
    """Eq. (1) stored as per-token flags instead of an L×L matrix.

    Attributes:
        in_region: (B, L) bool, True where the token is inside a mask region.
    """

    in_region: Tensor

    def __post_init__(self) -> None:
        if self.in_region.dtype != torch.bool or self.in_region.dim() != 2:
            raise ValueError(
                f"in_region must be a (B, L) bool tensor, got {self.in_region.dtype} "
                f"{tuple(self.in_region.shape)}"
            )

    @classmethod
    def from_regions(
        cls, seq_len: int, regions: Sequence[Sequence[Region]], device: torch.device | None = None
    ) -> RegionMask:
        """One region list per batch item."""
        return cls(torch.stack([region_flags(seq_len, r, device) for r in regions]))

    @property
    def seq_len(self) -> int:
        """L."""
        return self.in_region.shape[1]

    def rows(self, start: int, stop: int) -> Tensor:
        """(B, stop - start, L) bool: query rows ``[start, stop)`` of the mask."""
        flags = self.in_region
        row_idx = torch.arange(start, stop, device=flags.device)[:, None]
        col_idx = torch.arange(self.seq_len, device=flags.device)[None, :]
        causal = col_idx <= row_idx  # (rows, L)
        rows_in = flags[:, start:stop, None]  # (B, rows, 1)
        cols_in = flags[:, None, :]  # (B, 1, L)
        return ~cols_in | (rows_in & cols_in & causal)

    def dense(self) -> Tensor:
        """(B, L, L) bool, identical to `coglm_attention_mask` per batch item."""
        return self.rows(0, self.seq_len)


def text_image_generation_mask(
    text_len: int, image_len: int, *, device: torch.device | None = None
) -> Tensor:
    """Stage-1 mask over ``[text (text_len), BOI, image (image_len)]`` (reference.md §3.2).

    Causal, except that every column ``j < text_len`` is visible to every row: the text is
    bidirectional and every later token sees all of it; BOI and the image are causal.

    Returns:
        (T, T) bool with ``T = text_len + 1 + image_len``.
    """
    if text_len < 0 or image_len < 0:
        raise ValueError(f"text_len={text_len} and image_len={image_len} must be >= 0")
    total = text_len + 1 + image_len
    mask = torch.ones(total, total, dtype=torch.bool, device=device).tril()
    mask[:, :text_len] = True
    return mask


def inverse_prompt_mask(
    image_len: int, text_len: int, *, device: torch.device | None = None
) -> Tensor:
    """Caption-scoring mask over ``[image (image_len), BOC, caption (text_len)]`` (§3.6).

    Every row sees all image columns (the image is bidirectional context); the separator+caption
    block is lower-triangular; image rows see no text.

    Returns:
        (T, T) bool with ``T = image_len + 1 + text_len``.
    """
    if text_len < 0 or image_len <= 0:
        raise ValueError(f"image_len={image_len} must be > 0 and text_len={text_len} >= 0")
    total = image_len + 1 + text_len
    mask = torch.zeros(total, total, dtype=torch.bool, device=device)
    mask[:, :image_len] = True
    mask[image_len:, image_len:] = torch.ones(text_len + 1, text_len + 1, dtype=torch.bool).tril()
    return mask


def completion_mask(
    text_len: int, num_context: int, num_region: int, *, device: torch.device | None = None
) -> Tensor:
    """Infilling mask over ``[text (text_len, incl. its BOI), BOI, context, region]`` (§7.3).

    Lower-triangular, the text block is full, and every row after the extra BOI sees all context
    columns ``[text_len + 1, text_len + 1 + num_context)`` bidirectionally.

    Returns:
        (T, T) bool with ``T = text_len + 1 + num_context + num_region``.
    """
    if min(text_len, num_context, num_region) < 0:
        raise ValueError("text_len, num_context and num_region must be >= 0")
    total = text_len + 1 + num_context + num_region
    mask = torch.ones(total, total, dtype=torch.bool, device=device).tril()
    mask[:text_len, :text_len] = True
    context = slice(text_len + 1, text_len + 1 + num_context)
    mask[text_len + 1 :, context] = True
    return mask


def text_upweighting_bias(
    seq_len: int,
    text_len: int,
    value: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> Tensor:
    """Paper eq. (7): ``value`` added to the scores of every column ``j < text_len``.

    Returns:
        (seq_len, seq_len) float; pass it as ``attention_bias`` (stage 1 uses value 1.4).
    """
    if not 0 <= text_len <= seq_len:
        raise ValueError(f"text_len={text_len} must be in [0, seq_len={seq_len}]")
    bias = torch.zeros(seq_len, seq_len, dtype=dtype, device=device)
    bias[:, :text_len] = value
    return bias
