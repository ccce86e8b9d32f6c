"""Stage 1: text → low-resolution tokens with cached autoregression (reference.md §3)."""

from __future__ import annotations

import torch
from torch import Tensor

from cluster_sampling import ClusterSampler
from coglm_core.generation import Guidance, generate
from coglm_core.masks import text_image_generation_mask, text_upweighting_bias
from coglm_core.positions import text_image_position_ids
from coglm_core.transformer import CogLM

from ..recipes import SamplingRecipe
from ._batching import batch_sizes
from ._sampler import capped_cluster_sampler


def stage1_sampler(labels: Tensor, recipe: SamplingRecipe) -> ClusterSampler:
    """Cluster sampler of stage 1 (``topk_gen`` clusters, ``temp_all_gen``, ``temp_cluster_gen``).

    ``topk_gen`` is capped at the number of clusters (only matters for small test codebooks).
    """
    return capped_cluster_sampler(
        labels, recipe.topk_gen, recipe.temp_all_gen, recipe.temp_cluster_gen
    )


def unconditional_guidance(model: CogLM, scale: float) -> Guidance | None:
    """Guidance by the text-free stage-1 sequence ``[BOI, x_0 .. x_{n-1}]``; None when scale is 1.

    The text-free sequence is what a model trained with text dropout saw for a dropped caption
    (``coglm_core.text_image_generation_example(drop_text=True)``): BOI at ``boi_position``, the
    image at its usual positions, causal.
    """
    if scale == 1.0:
        return None
    cfg = model.config
    device = model.device
    return Guidance(
        prefix=torch.tensor([cfg.boi_id], dtype=torch.long, device=device),
        position_ids=text_image_position_ids(0, cfg, device=device),
        attention_mask=text_image_generation_mask(0, cfg.num_image_positions, device=device),
        scale=scale,
    )


@torch.no_grad()
def generate_low_res(
    model: CogLM,
    text_ids: list[int],
    *,
    num_images: int,
    recipe: SamplingRecipe,
    labels: Tensor,
    generator: torch.Generator | None = None,
    max_batch: int = 8,
    progress: bool = False,
    guidance_scale: float = 1.0,
) -> Tensor:
    """Sample ``num_images`` low-resolution token grids for one prompt.

    Sequence ``[text, BOI, x_0 .. x_{n-1}]``: bidirectional text, causal image, ``attn_plus`` added
    to the scores of the text columns, cluster sampling over the image logits only. With
    ``guidance_scale != 1`` the logits are guided by the text-free sequence ``[BOI, x_0 ..]``
    (classifier-free guidance, `unconditional_guidance`).

    Args:
        model: Stage-1 CogLM (eval mode).
        text_ids: Text ids of the formatted prompt, without BOI.
        num_images: Samples to draw (any positive number; batches of ``max_batch``).
        recipe: Sampling constants.
        labels: (num_image_tokens,) cluster label of every image id.
        generator: Random source.
        max_batch: Samples per forward pass (8 in the release).
        progress: tqdm bar per batch.
        guidance_scale: Classifier-free guidance scale (1 = off, as the release).

    Returns:
        (num_images, grid²) long image ids.
    """
    cfg = model.config
    device = model.device
    n, image_len = len(text_ids), cfg.num_image_positions
    if n == 0:
        raise ValueError("the prompt encodes to no text tokens")
    total = n + 1 + image_len
    positions = text_image_position_ids(n, cfg, device=device)
    mask = text_image_generation_mask(n, image_len, device=device)
    bias = text_upweighting_bias(total, n, recipe.attn_plus, device=device)
    sampler = stage1_sampler(labels, recipe)
    prefix = torch.tensor([*text_ids, cfg.boi_id], dtype=torch.long, device=device)
    guidance = unconditional_guidance(model, guidance_scale)
    outs = []
    for size in batch_sizes(num_images, max_batch):
        tokens = torch.full((size, total), -1, dtype=torch.long, device=device)
        tokens[:, : n + 1] = prefix
        filled = generate(
            model,
            tokens,
            positions,
            attention_mask=mask,
            attention_bias=bias,
            sampler=sampler,
            generator=generator,
            logits_range=(0, cfg.num_image_tokens),
            guidance=guidance,
            progress=progress,
        )
        outs.append(filled[:, n + 1 :])
    return torch.cat(outs)
