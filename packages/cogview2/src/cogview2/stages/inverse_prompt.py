"""Post-selection by inverse prompting: score images by caption likelihood (reference.md §3.6)."""

from __future__ import annotations

import torch
from torch import Tensor

from coglm_core.masks import inverse_prompt_mask
from coglm_core.positions import inverse_prompt_position_ids
from coglm_core.transformer import CogLM

from ._batching import batch_sizes


@torch.no_grad()
def caption_scores(
    model: CogLM,
    image_ids: Tensor,
    caption_ids: list[int],
    *,
    separator_id: int,
    max_batch: int = 8,
) -> Tensor:
    """Mean log-probability of ``caption_ids`` given each image (higher is better).

    Sequence ``[image, separator, caption]``; the image is bidirectional context and the caption
    causal; full-vocabulary head, no text bias.

    Args:
        model: The stage-1 CogLM.
        image_ids: (N, grid²) long low-resolution ids.
        caption_ids: The raw prompt's text ids (no style suffix, no BOI).
        separator_id: BOC in the release (used even for English prompts).
        max_batch: Samples per forward pass.

    Returns:
        (N,) float32 scores.
    """
    cfg = model.config
    if not caption_ids:
        raise ValueError("caption_ids is empty")
    device = model.device
    image_len, m = cfg.num_image_positions, len(caption_ids)
    if image_ids.shape[1:] != (image_len,):
        raise ValueError(f"image_ids must be (N, {image_len}), got {tuple(image_ids.shape)}")
    positions = inverse_prompt_position_ids(m, cfg, device=device)
    mask = inverse_prompt_mask(image_len, m, device=device)
    tail = torch.tensor([separator_id, *caption_ids], dtype=torch.long, device=device)
    targets = tail[1:]
    scores, start = [], 0
    for size in batch_sizes(image_ids.shape[0], max_batch):
        img = image_ids[start : start + size].to(device)
        start += size
        ids = torch.cat([img, tail.expand(size, -1)], dim=1)
        out = model(ids, positions, attention_mask=mask, return_logits=False)
        hidden = out.hidden_states[:, image_len : image_len + m]  # predicts caption tokens
        logp = torch.log_softmax(model.logits(hidden), dim=-1)  # (B, m, V)
        scores.append(logp.gather(-1, targets.expand(size, -1)[..., None]).squeeze(-1).mean(-1))
    return torch.cat(scores).float().cpu()
