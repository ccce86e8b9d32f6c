"""Position-id layouts of CogView2 (reference.md §2.4, §3.2, §3.6)."""

from __future__ import annotations

import torch
from torch import Tensor

from .config import CogLMConfig


def image_position_ids(
    image_indices: Tensor | int, config: CogLMConfig, *, device: torch.device | None = None
) -> Tensor:
    """Position ids of low-resolution image tokens: ``image_position_offset + k`` (513 + k).

    Args:
        image_indices: raster indices k in ``[0, image_grid_size**2)``, any shape, or an int n
            meaning ``arange(n)``.

    Returns:
        long tensor of the same shape (or (n,)).
    """
    if isinstance(image_indices, int):
        image_indices = torch.arange(image_indices, device=device)
    n = config.num_image_positions
    if image_indices.numel() and (image_indices.min() < 0 or image_indices.max() >= n):
        raise ValueError(f"image indices must be in [0, {n})")
    return image_indices.long() + config.image_position_offset


def text_image_position_ids(
    text_len: int,
    config: CogLMConfig,
    *,
    image_len: int | None = None,
    device: torch.device | None = None,
) -> Tensor:
    """Stage-1 positions for ``[text, BOI, image]``: text ``0..``, BOI ``boi_position`` (512),
    image token k ``image_position_offset + k`` (513 + k).

    Args:
        text_len: text tokens before BOI.
        image_len: image tokens after BOI (default: the whole grid, 400).

    Returns:
        (text_len + 1 + image_len,) long.
    """
    image_len = config.num_image_positions if image_len is None else image_len
    if text_len < 0 or not 0 <= image_len <= config.num_image_positions:
        raise ValueError(
            f"text_len={text_len} must be >= 0 and image_len={image_len} in "
            f"[0, {config.num_image_positions}]"
        )
    if text_len > config.boi_position:
        raise ValueError(f"text_len={text_len} overlaps boi_position={config.boi_position}")
    text = torch.arange(text_len, device=device)
    boi = torch.tensor([config.boi_position], device=device)
    return torch.cat([text, boi, image_position_ids(image_len, config, device=device)])


def inverse_prompt_position_ids(
    text_len: int, config: CogLMConfig, *, device: torch.device | None = None
) -> Tensor:
    """Caption-scoring positions for ``[image (400), BOC, caption (text_len)]`` (§3.6): image
    ``513..912``, then ``0, 1, ...`` for BOC and the caption.

    Returns:
        (num_image_positions + 1 + text_len,) long.
    """
    if text_len < 0:
        raise ValueError(f"text_len={text_len} must be >= 0")
    image = image_position_ids(config.num_image_positions, config, device=device)
    return torch.cat([image, torch.arange(text_len + 1, device=device)])
