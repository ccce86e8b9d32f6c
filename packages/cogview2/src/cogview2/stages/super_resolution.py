"""Stages 2 and 3: direct super-resolution (one pass, §4.4) and LoPAR iterative SR (§5.3-5.4)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from cluster_sampling import ClusterSampler, TopKSampler

from ..lopar import NUM_PASSES, PASS_TOP_K, pass_mask, tiled_order
from ..models.sr import DirectSuperResolution, IterativeSuperResolution
from ..recipes import SamplingRecipe
from ._batching import batch_sizes
from ._sampler import capped_cluster_sampler

PassHook = Callable[[int, Tensor], None]
"""``hook(pass_number, mask (B, G, G) bool)``, called before each LoPAR pass (for tests/tools)."""


def dsr_sampler(labels: Tensor, recipe: SamplingRecipe) -> ClusterSampler:
    """Cluster sampler of DSR (``topk_dsr`` clusters, T1 = ``temp_all_dsr``, T2 = ``temp_cluster_dsr``).

    ``topk_dsr`` is capped at the number of clusters (only matters for small test codebooks).
    """
    return capped_cluster_sampler(
        labels, recipe.topk_dsr, recipe.temp_all_dsr, recipe.temp_cluster_dsr
    )


@torch.no_grad()
def direct_super_resolution(
    model: DirectSuperResolution,
    text_ids: list[int],
    low_ids: Tensor,
    *,
    recipe: SamplingRecipe,
    labels: Tensor,
    generator: torch.Generator | None = None,
    max_batch: int = 4,
) -> Tensor:
    """All hi-res tokens sampled independently from one forward pass per batch.

    Args:
        model: DSR model.
        text_ids: Text ids without BOI (at most ``model.config.max_text_len``).
        low_ids: (N, low²) long.
        recipe: Sampling constants (``topk_dsr``, ``temp_cluster_dsr``).
        labels: Cluster labels of the image ids.
        generator: Random source.
        max_batch: Samples per forward pass (4 in the release).

    Returns:
        (N, high²) long.
    """
    device = model.extra_positions.device
    text = torch.tensor(text_ids, dtype=torch.long, device=device)
    sampler = dsr_sampler(labels, recipe)
    outs, start = [], 0
    for size in batch_sizes(low_ids.shape[0], max_batch):
        # No name holds the (B, G², V) float32 logits, so they are freed before the next
        # batch's forward (they are the stage's largest tensor).
        outs.append(sampler(model(text, low_ids[start : start + size].to(device)), generator))
        start += size
    return torch.cat(outs)


@torch.no_grad()
def iterative_super_resolution(
    model: IterativeSuperResolution,
    text_ids: list[int],
    high_ids: Tensor,
    *,
    generator: torch.Generator | None = None,
    input_mask: Tensor | None = None,
    max_batch: int = 4,
    top_k: tuple[int, ...] = PASS_TOP_K,
    temperature: float = 1.0,
    passes: tuple[int, ...] | None = None,
    on_pass: PassHook | None = None,
) -> Tensor:
    """Six LoPAR passes refining the hi-res tokens (reference.md §5.3).

    In pass t the positions whose order value is >= t (and inside ``input_mask``) are replaced by
    BOI, the model runs once, and new tokens are sampled there with top-k ``top_k[t-1]``.

    Args:
        model: ITERSR model.
        text_ids: Text ids without BOI; only the first ``model.config.text_slots`` are used.
        high_ids: (N, high²) long DSR tokens.
        generator: Random source.
        input_mask: Optional bool (N, high, high) or (high, high): only these positions change.
        max_batch: Samples per forward pass (4 in the release).
        top_k: Per-pass top-k (40, 40, 40, 20, 20, 10).
        temperature: Temperature of every pass (1.0 in the release).
        passes: The passes to run, ascending, from ``1..6`` (None: all six, as the release); a
            skipped pass re-masks nothing, so the positions only it would have re-masked keep
            their DSR tokens.
        on_pass: Optional hook receiving each pass's mask.

    Returns:
        (N, high²) long.
    """
    cfg = model.config
    if len(top_k) != NUM_PASSES:
        raise ValueError(f"top_k needs {NUM_PASSES} values, got {len(top_k)}")
    run = tuple(range(1, NUM_PASSES + 1)) if passes is None else tuple(passes)
    if not run or list(run) != sorted(set(run)) or not set(run) <= set(range(1, NUM_PASSES + 1)):
        raise ValueError(f"passes must be ascending, distinct, in 1..{NUM_PASSES}; got {passes!r}")
    device = model.extra_positions.device
    boi = model.base.config.boi_id
    text = torch.tensor(text_ids[: cfg.text_slots], dtype=torch.long, device=device)
    order = tiled_order(cfg.high_grid, device=device)
    samplers = [TopKSampler(k, temperature) for k in top_k]
    outs, start = [], 0
    for size in batch_sizes(high_ids.shape[0], max_batch):
        tokens = (
            high_ids[start : start + size].to(device).reshape(size, cfg.high_grid, cfg.high_grid)
        )
        sub_mask = None
        if input_mask is not None:
            sub_mask = input_mask.to(device)
            if sub_mask.dim() == 3:
                sub_mask = sub_mask[start : start + size]
        start += size
        tokens = tokens.clone()
        for step in run:
            mask = pass_mask(order, step, sub_mask).expand(size, -1, -1)
            if on_pass is not None:
                on_pass(step, mask)
            masked = torch.where(mask, torch.full_like(tokens, boi), tokens)
            # The (B, G², V) float32 logits are freed here, not held through the next pass.
            sampled = samplers[step - 1](model(text, masked), generator).reshape_as(tokens)
            tokens = torch.where(mask, sampled, tokens)
        outs.append(tokens.reshape(size, -1))
    return torch.cat(outs)
