"""LoPAR: the local parallel auto-regressive schedule of iterative super-resolution (§5.3-5.4)."""

from __future__ import annotations

import torch
from torch import Tensor

ORDER_MATRIX: tuple[tuple[int, ...], ...] = (
    (-1, 0, 1, 2, 3, 4),
    (0, -1, 2, -1, -2, 5),
    (1, -2, 3, 4, 5, 6),
    (2, 3, 4, 5, -1, 1),
    (3, -1, -2, 0, -1, 2),
    (4, 5, 6, 1, 3, -2),
)
"""The released 6×6 order matrix, verbatim (reference.md §5.3). A cell with value v >= 1 is
regenerated in passes 1..v and final after pass v; values <= 0 keep the DSR token."""

PASS_TOP_K: tuple[int, ...] = (40, 40, 40, 20, 20, 10)
"""Top-k of passes 1..6 (the release's ``topks[1:]``; ``topks[0] = 60`` is never used)."""

NUM_PASSES: int = 6


def tiled_order(grid: int, *, device: torch.device | str | None = None) -> Tensor:
    """The order matrix tiled over a ``grid × grid`` token grid, row-major.

    Args:
        grid: Side of the token grid (60 for the release); must be a multiple of 6.

    Returns:
        (grid, grid) long tensor; value at (r, c) is ``ORDER_MATRIX[r % 6][c % 6]``.
    """
    side = len(ORDER_MATRIX)
    if grid <= 0 or grid % side:
        raise ValueError(f"grid={grid} must be a positive multiple of {side}")
    m = torch.tensor(ORDER_MATRIX, dtype=torch.long, device=device)
    reps = grid // side
    return m.repeat(reps, reps)


def pass_mask(order: Tensor, step: int, input_mask: Tensor | None = None) -> Tensor:
    """Positions re-masked (and re-sampled) in pass ``step`` (1-based): ``order >= step``.

    Args:
        order: (grid, grid) from `tiled_order`.
        step: Pass number in ``1..NUM_PASSES``.
        input_mask: Optional bool (B, grid, grid) or (grid, grid): only these positions may be
            regenerated (completion, §7.4).

    Returns:
        bool (grid, grid), or (B, grid, grid) with ``input_mask``.
    """
    if not 1 <= step <= NUM_PASSES:
        raise ValueError(f"step={step} must be in [1, {NUM_PASSES}]")
    mask = order >= step
    if input_mask is not None:
        mask = mask & input_mask.to(torch.bool)
    return mask


def final_pass(order: Tensor) -> Tensor:
    """Pass after which each position is final (0 = never regenerated, kept from DSR)."""
    return order.clamp_min(0)
