"""Splitting a number of samples into inference batches (no remainder dropped)."""

from __future__ import annotations


def batch_sizes(total: int, max_batch: int) -> list[int]:
    """Sizes of consecutive batches covering ``total`` samples, each at most ``max_batch``.

    The release computes ``max(total // max_batch, 1)`` chunks and silently drops the remainder;
    here every sample is produced (docs/deviations.md).
    """
    if total < 0 or max_batch < 1:
        raise ValueError(f"total={total} must be >= 0 and max_batch={max_batch} >= 1")
    full, rest = divmod(total, max_batch)
    return [max_batch] * full + ([rest] if rest else [])
