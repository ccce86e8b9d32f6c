"""Image loading and preprocessing: RGB conversion, resize + centre crop, normalisation."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

#: What ``encode_image`` accepts for one image.
ImageInput: TypeAlias = Image.Image | str | os.PathLike | torch.Tensor


@dataclass(frozen=True)
class ImageNormalization:
    """Per-channel ``(x - mean) / std`` applied to [0, 1] RGB before the encoder (official values)."""

    mean: tuple[float, float, float] = (0.79093, 0.76271, 0.75340)
    std: tuple[float, float, float] = (0.30379, 0.32279, 0.32800)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) in [0, 1] → normalised."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of ``normalize`` (no clamping)."""
        mean, std = self._stats(x)
        return x * std + mean

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return mean, std


def pil_to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB. Images with alpha (RGBA, LA, palette with transparency)
    are composited on a **white** background; grayscale is replicated to 3 channels."""
    if image.width == 0 or image.height == 0:
        raise ValueError(f"image has zero size {image.size}; width and height must be >= 1")
    if image.mode == "RGB":
        return image
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB; FileNotFoundError / ValueError naming the path."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p.resolve()}")
    try:
        with Image.open(p) as im:
            im.load()
            return pil_to_rgb(im)
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {p.resolve()}: {err}") from err


def to_float_tensor(image: ImageInput) -> torch.Tensor:
    """One image (PIL, path or tensor) → float32 (3, H, W) in [0, 1].

    Tensors must be floating point in [0, 1], shaped (C, H, W) with C = 3, 1 (replicated) or 4
    (composited on white), as in the official ``image_torch`` input.
    """
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        arr = np.asarray(pil_to_rgb(image), dtype=np.uint8)  # (H, W, 3)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected a PIL image, a path or a tensor, got {type(image).__name__}")
    if not image.is_floating_point():
        raise ValueError(f"image tensors must be floating point in [0, 1], got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"image tensor must be (C, H, W) with C in (1, 3, 4), got {tuple(image.shape)}"
        )
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"image has zero size {tuple(image.shape)}; H and W must be >= 1")
    x = image.float()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif x.shape[0] == 4:
        rgb, alpha = x[:3], x[3:4]
        x = rgb * alpha + (1.0 - alpha)
    return x


def resize_center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bilinear, antialiased) then centre-crop to size×size.

    Matches torchvision ``Resize(size)`` + ``CenterCrop(size)`` on tensors with ``antialias=True``.

    Args:
        x: (C, H, W) float.
        size: Output side in pixels.

    Returns:
        (C, size, size).
    """
    if size < 1:
        raise ValueError(f"image_size must be >= 1, got {size}")
    _, h, w = x.shape
    if (h, w) != (size, size):
        if h <= w:
            new_h, new_w = size, int(size * w / h)
        else:
            new_h, new_w = int(size * h / w), size
        if (new_h, new_w) != (h, w):
            x = F.interpolate(
                x[None], size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
            )[0]
        top = round((new_h - size) / 2.0)
        left = round((new_w - size) / 2.0)
        x = x[:, top : top + size, left : left + size]
    return x


def batch_images(images: ImageInput | list[ImageInput], image_size: int | None) -> torch.Tensor:
    """Any accepted input → float32 (B, 3, H, W) in [0, 1]; a 4-D tensor is a batch."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        items: list[ImageInput] = list(images.unbind(0))
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        items = [images]
    if not items:
        raise ValueError("no images given")
    tensors = [to_float_tensor(im) for im in items]
    if image_size is not None:
        tensors = [resize_center_crop(t, image_size) for t in tensors]
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(
            f"images have different sizes {sorted(shapes)}; pass image_size=... to resize"
        )
    return torch.stack(tensors)


def grid_side(n: int) -> int:
    """Side of a square grid of ``n`` tokens (official ``int(sqrt(n) + 1e-5)``); ValueError if not square."""
    s = int(math.sqrt(n) + 1e-5)
    if s * s != n:
        raise ValueError(f"{n} ids do not form a square grid; pass ids shaped (B, h, w)")
    return s
