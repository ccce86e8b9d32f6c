"""Inference-time infilling: "move the last context token before a region into it" (paper §3.1,
figure 3; reference.md §7.3).

Training never predicts the first token of a region, so at inference the known token just before
each masked run is placed into the region, where it predicts the first masked token.

* `infilling_plan` (released, single pass): all masked cells form one region list; in every row
  the known cell left of a masked run is moved in.
* `infill` with ``per_region=True`` (paper): each maximal raster run of masked cells is filled in
  its own pass, moving in only the token before *that* run and keeping every other known (or
  already filled) cell as context.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .config import CogLMConfig
from .generation import UNKNOWN, Sampler, generate
from .masks import completion_mask, text_upweighting_bias
from .transformer import CogLM


@dataclass
class InfillingPlan:
    """The sequence layout of one infilling pass.

    Attributes:
        tokens: (B, T) long: text, BOI, context cells, region cells; -1 = to generate.
        position_ids: (T,) long (text 0.., BOI ``boi_position``, cell k ``image_position_offset+k``).
        attention_mask: (T, T) bool (`completion_mask`).
        text_len: text tokens before the extra BOI.
        cells: (T - text_len - 1,) long raster index of each image slot in the sequence.
    """

    tokens: Tensor
    position_ids: Tensor
    attention_mask: Tensor
    text_len: int
    cells: Tensor


def released_region_cells(image: Tensor, config: CogLMConfig) -> Tensor:
    """(N,) bool region flags of the release: masked cells, plus every known cell whose right
    neighbour in the same row is masked (a run starting at column 0 gets no moved token)."""
    g = config.image_grid_size
    masked = (image == UNKNOWN).view(-1, g, g).any(0)  # (g, g)
    moved = torch.zeros_like(masked)
    moved[:, :-1] = ~masked[:, :-1] & masked[:, 1:]
    return (masked | moved).flatten()


def masked_runs(masked: Tensor) -> list[tuple[int, int]]:
    """Maximal runs ``(start, end)`` of True in a 1-D bool tensor (raster order)."""
    flags = masked.int().tolist()
    runs, start = [], None
    for i, f in enumerate([*flags, 0]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            runs.append((start, i))
            start = None
    return runs


def infilling_plan(
    text_ids: Tensor,
    image: Tensor,
    region: Tensor,
    config: CogLMConfig,
    *,
    include: Tensor | None = None,
) -> InfillingPlan:
    """Lay out ``[text, BOI, context cells, region cells]`` (reference.md §7.3).

    Args:
        text_ids: (Tt,) long, the prompt (with the template's BOI if any).
        image: (B, N) long grid in raster order, -1 = to generate.
        region: (N,) bool, cells placed in the region list (in raster order, after the context).
        include: (N,) bool, cells present in the sequence at all (default: all).
    """
    include = torch.ones_like(region) if include is None else include
    cells_ctx = (include & ~region).nonzero().flatten()
    cells_reg = (include & region).nonzero().flatten()
    cells = torch.cat([cells_ctx, cells_reg])
    batch, tl = image.shape[0], text_ids.shape[0]
    head = torch.cat([text_ids.long(), torch.tensor([config.boi_id], device=text_ids.device)])
    tokens = torch.cat([head.expand(batch, -1), image[:, cells]], dim=1)
    pos = torch.cat(
        [
            torch.arange(tl, device=text_ids.device),
            torch.tensor([config.boi_position], device=text_ids.device),
            cells + config.image_position_offset,
        ]
    )
    mask = completion_mask(tl, cells_ctx.numel(), cells_reg.numel(), device=text_ids.device)
    return InfillingPlan(tokens, pos, mask, tl, cells)


@torch.no_grad()
def infill(
    model: CogLM,
    text_ids: Tensor,
    image: Tensor,
    *,
    sampler: Sampler,
    generator: torch.Generator | None = None,
    per_region: bool = True,
    upweight: float = 1.4,
) -> Tensor:
    """Fill the -1 cells of low-resolution token grids, conditioned on text and known cells.

    Args:
        model: the `CogLM`.
        text_ids: (Tt,) long prompt; the release passes it WITH the template's BOI (its
            ``txt_len'`` counts it) and upweights every text column by ``upweight``.
        image: (B, N) long, N = grid²; -1 marks cells to generate; the -1 pattern must be the
            same in every row.
        sampler: see `generate`; image logits only (``[0, num_image_tokens)``).
        per_region: True = one pass per masked run (paper); False = the released single pass.
        upweight: eq. (7) constant on the text columns (0 disables).

    Returns:
        (B, N) long, every -1 replaced.
    """
    n = config_n = model.config.num_image_positions
    if image.dim() != 2 or image.shape[1] != config_n:
        raise ValueError(f"image must be (B, {n}), got {tuple(image.shape)}")
    unknown = image == UNKNOWN
    if not bool((unknown == unknown[:1]).all()):
        raise ValueError("the -1 pattern must be identical across the batch")
    out = image.clone()
    config = model.config
    if per_region:
        for start, end in masked_runs(unknown[0]):
            region = torch.zeros(n, dtype=torch.bool, device=image.device)
            region[max(start - 1, 0) : end] = True  # the moved-in token, then the run
            include = (out[0] != UNKNOWN) | region
            out = _run(
                model,
                infilling_plan(text_ids, out, region, config, include=include),
                out,
                sampler,
                generator,
                upweight,
            )
        return out
    region = released_region_cells(out, config)
    return _run(
        model, infilling_plan(text_ids, out, region, config), out, sampler, generator, upweight
    )


def _run(
    model: CogLM,
    plan: InfillingPlan,
    image: Tensor,
    sampler: Sampler,
    generator: torch.Generator | None,
    upweight: float,
) -> Tensor:
    seq_len = plan.tokens.shape[1]
    bias = None
    if upweight:
        bias = text_upweighting_bias(seq_len, plan.text_len, upweight, device=plan.tokens.device)
    filled = generate(
        model,
        plan.tokens,
        plan.position_ids,
        attention_mask=plan.attention_mask,
        attention_bias=bias,
        sampler=sampler,
        generator=generator,
        logits_range=(0, model.config.num_image_tokens),
    )
    out = image.clone()
    out[:, plan.cells] = filled[:, plan.text_len + 1 :]
    return out
