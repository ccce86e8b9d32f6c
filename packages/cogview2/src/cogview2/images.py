"""Images in and out of the pipeline: validation, conversion, decoding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from icetk import IceTokenizer

ImageLike = Image.Image | Tensor
"""An RGB ``PIL.Image`` or a float (3, S, S) tensor in [0, 1]."""


def image_to_tensor(image: ImageLike, sides: Sequence[int]) -> Tensor:
    """(1, 3, S, S) float32 in [0, 1] from a PIL RGB image or a tensor.

    Args:
        image: RGB ``PIL.Image`` or float (3, S, S) / (1, 3, S, S) tensor in [0, 1].
        sides: Allowed square sides S.

    Raises:
        ValueError: wrong type, mode, size, shape or value range (the message says what is expected).
    """
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(f"image mode is {image.mode!r}; convert it with image.convert('RGB')")
        if image.size[0] != image.size[1] or image.size[0] not in sides:
            raise ValueError(
                f"image is {image.size[0]}×{image.size[1]} px; expected a square of side {list(sides)}"
            )
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    if isinstance(image, Tensor):
        x = image[None] if image.dim() == 3 else image
        if (
            x.dim() != 4
            or x.shape[:2] != (1, 3)
            or x.shape[2] != x.shape[3]
            or x.shape[2] not in sides
        ):
            raise ValueError(
                f"image tensor must be (3, S, S) with S in {list(sides)}, got {tuple(image.shape)}"
            )
        if not x.is_floating_point() or x.min() < 0 or x.max() > 1:
            raise ValueError("image tensor must be float in [0, 1]")
        return x.float().cpu()
    raise ValueError(f"image must be a PIL.Image or a torch.Tensor, got {type(image).__name__}")


def tokens_to_images(
    tokenizer: IceTokenizer,
    tokens: Tensor,
    compression: int,
    size: int,
    output_type: Literal["pil", "pt"],
) -> list[Image.Image] | Tensor:
    """Decode (N, g, g) or (N, g²) ids, clamp to [0, 1], nearest-resize to ``size`` px if needed.

    Returns:
        float32 (N, 3, size, size) for "pt", a list of RGB PIL images for "pil".
    """
    tokens = tokens.reshape(tokens.shape[0], -1)
    side = round(tokens.shape[1] ** 0.5)
    images = tokenizer.decode_image(
        tokens.reshape(-1, side, side).cpu(), compression=compression, output="pt"
    )
    images = images.float().clamp(0, 1)
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="nearest")
    return images if output_type == "pt" else to_pil(images)


def to_pil(images: Tensor) -> list[Image.Image]:
    """RGB PIL images of float (N, 3, S, S) images in [0, 1] (rounded to the nearest level, so
    an image read from 8-bit pixels comes back bit for bit)."""
    arrays = (images * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a, mode="RGB") for a in arrays]
