"""Image captioning with the stage-1 CogLM: ``[image, BOE|BOC, text...]`` (paper §3.2 task 2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from coglm_core.generation import generate, multinomial_sampler
from coglm_core.masks import inverse_prompt_mask
from coglm_core.positions import inverse_prompt_position_ids
from coglm_core.transformer import CogLM


@torch.no_grad()
def generate_caption_ids(
    model: CogLM,
    image_ids: Tensor,
    *,
    separator_id: int,
    allowed_ids: Tensor,
    max_length: int,
    temperature: float = 1.0,
    stop_ids: Sequence[int] = (),
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Sample a caption for each low-resolution token grid.

    The image is bidirectional context at positions 513.., the separator (BOE or BOC) takes
    position 0 and the caption is causal after it (the layout of the caption pretraining task).

    Args:
        model: Stage-1 CogLM.
        image_ids: (N, grid²) long.
        separator_id: BOE for English, BOC for Chinese.
        allowed_ids: (vocab_size,) bool: ids the caption may use (the language sampling mask).
        max_length: Caption tokens to sample at most.
        temperature: Sampling temperature.
        stop_ids: Ids that end a caption (not included in the result).
        generator: Random source.

    Returns:
        One list of text ids per image.
    """
    cfg = model.config
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    device = model.device
    image_len = cfg.num_image_positions
    n = image_ids.shape[0]
    tokens = torch.full((n, image_len + 1 + max_length), -1, dtype=torch.long, device=device)
    tokens[:, :image_len] = image_ids.to(device)
    tokens[:, image_len] = separator_id
    positions = inverse_prompt_position_ids(max_length, cfg, device=device)
    mask = inverse_prompt_mask(image_len, max_length, device=device)
    out = generate(
        model,
        tokens,
        positions,
        attention_mask=mask,
        sampler=multinomial_sampler(temperature),
        generator=generator,
        allowed_ids=allowed_ids.to(device),
        stop_ids=stop_ids,
    )
    captions = []
    for row in out[:, image_len + 1 :].tolist():
        ids = []
        for t in row:
            if t < 0 or t in stop_ids:
                break
            ids.append(t)
        captions.append(ids)
    return captions
