"""Shared internals: input checks, uniform draws, inverse-CDF categorical sampling, row chunking.

Every sampler in this package turns one uniform number per categorical draw into an index by
inverting the CDF. The uniforms come from `torch.rand` with the caller's generator, drawn once per
call for all rows, so results do not depend on chunking and can be reproduced by a per-row reference
that is given the same uniforms.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

CHUNK_ELEMENTS = 1 << 22
"""Rows are processed in chunks of about this many logits (16 MiB in float32) to bound memory."""


def compute_dtype(logits: torch.Tensor) -> torch.dtype:
    """float64 inputs stay float64 (for references); everything else is computed in float32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def check_scores(scores: torch.Tensor, name: str = "logits") -> None:
    """Raise ValueError unless `scores` is a float tensor with at least one dimension."""
    if not isinstance(scores, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(scores).__name__}")
    if not scores.dtype.is_floating_point:
        raise ValueError(f"{name} must be a float tensor, got {scores.dtype}")
    if scores.ndim == 0 or scores.shape[-1] == 0:
        raise ValueError(
            f"{name} must have a non-empty last (vocabulary) dimension, got {tuple(scores.shape)}"
        )


def check_row_max(row_max: torch.Tensor, first_row: int, name: str = "logits") -> None:
    """Raise ValueError for rows containing NaN or +inf, or whose entries are all -inf.

    `row_max` is the per-row maximum (NaN propagates through `amax`), so one reduction checks all.
    """
    bad = ~torch.isfinite(row_max)
    if not bool(bad.any()):
        return
    row = int(bad.nonzero()[0, 0])
    value = float(row_max[row])
    index = first_row + row
    if value != value:
        raise ValueError(f"{name} row {index} (flattened) contains NaN")
    if value > 0:
        raise ValueError(f"{name} row {index} (flattened) contains +inf")
    raise ValueError(
        f"{name} row {index} (flattened) is entirely masked (all -inf): nothing can be sampled; "
        "check the id masks / top-k / top-p settings"
    )


def draw_uniforms(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """float64 uniforms in [0, 1), drawn on the generator's device and moved to `device`.

    Drawing on the generator's device means a CPU generator gives the same tokens whether the logits
    live on the CPU or on an accelerator.
    """
    draw_device = generator.device if generator is not None else device
    u = torch.rand(shape, generator=generator, device=draw_device, dtype=torch.float64)
    return u.to(device)


def inverse_cdf(weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index `i` of each row with `cdf[i-1] <= u * total < cdf[i]` (unnormalised weights).

    Zero-weight entries are never chosen. Computed in float64.

    Args:
        weights: `(rows, n)` non-negative weights with a positive row sum.
        u: `(rows,)` uniforms in [0, 1).

    Returns:
        `(rows,)` int64 indices in `[0, n)`.
    """
    cdf = weights.to(torch.float64).cumsum(-1)  # (rows, n)
    total = cdf[:, -1:]  # (rows, 1)
    target = u.to(torch.float64).unsqueeze(-1) * total  # (rows, 1)
    index = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    # u * total can round up to total: fall back to the last entry with positive weight.
    last_positive = (cdf < total).sum(-1)
    return torch.minimum(index, last_positive)


def row_chunks(rows: int, width: int) -> Iterator[slice]:
    """Slices of about CHUNK_ELEMENTS elements over `rows` rows of `width` entries."""
    step = max(1, CHUNK_ELEMENTS // max(1, width))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))
