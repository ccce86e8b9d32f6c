"""Validation of what the page receives: prompts, counts, seeds, uploads and boxes.

Every function raises ValueError with a message meant for the person at the page (the app shows
it as a Gradio error); none needs Gradio, so they are tested without a browser.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..stages.completion import Box, validate_box

BoxUnit = Literal["fraction", "pixels"]
BOX_UNITS: tuple[str, ...] = ("fraction", "pixels")


def check_prompt(prompt: str | None) -> str:
    """The prompt without surrounding blanks; ValueError when nothing is left."""
    if prompt is None or not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("Enter a prompt first, e.g. 'a red apple' or '一个红苹果'.")
    return prompt.strip()


def check_count(value: float | int | None, *, maximum: int, what: str = "number of images") -> int:
    """A whole count in ``[1, maximum]`` (Gradio numbers and sliders may arrive as floats)."""
    if value is None or isinstance(value, bool):
        raise ValueError(f"Choose the {what} (1 to {maximum}).")
    if float(value) != int(value) or not 1 <= int(value) <= maximum:
        raise ValueError(f"The {what} must be a whole number from 1 to {maximum}, got {value}.")
    return int(value)


def resolve_seed(seed: float | int | None, randomize: bool, *, max_seed: int) -> int:
    """The seed a request runs with: a fresh one from ``[0, max_seed]`` when ``randomize``,
    else ``seed`` itself, which must then be a whole number in that range."""
    if randomize:
        return secrets.randbelow(max_seed + 1)
    if seed is None or isinstance(seed, bool):
        raise ValueError("Enter a seed, or tick 'random seed'.")
    if float(seed) != int(seed) or not 0 <= int(seed) <= max_seed:
        raise ValueError(f"The seed must be a whole number from 0 to {max_seed}, got {seed}.")
    return int(seed)


def load_upload(
    path: str | os.PathLike[str] | None, *, max_side: int, max_bytes: int
) -> Image.Image:
    """Open an uploaded file as an RGB image (transparency composited onto white).

    Args:
        path: The uploaded file, or None when nothing was uploaded.
        max_side: Longest accepted side in pixels (checked from the header, before decoding).
        max_bytes: Largest accepted file size.

    Returns:
        RGB `PIL.Image.Image`, fully loaded (the file is closed).

    Raises:
        ValueError: nothing uploaded, file too large, not an image, or image too large.
    """
    if path is None or str(path) == "":
        raise ValueError("Upload an image first.")
    file = Path(path)
    if not file.is_file():
        raise ValueError("The upload did not arrive; upload the image again.")
    size = file.stat().st_size
    if size > max_bytes:
        raise ValueError(
            f"The file is {size / 2**20:.1f} MiB; files up to {max_bytes / 2**20:.0f} MiB "
            "are accepted."
        )
    try:
        with Image.open(file) as im:
            width, height = im.size
            if max(width, height) > max_side:
                raise ValueError(
                    f"The image is {width}×{height} px; at most {max_side} px a side is accepted "
                    "(shrink it first)."
                )
            im.load()
            return _to_rgb(im)
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"The image is too large; at most {max_side} px a side is accepted."
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(
            f"'{file.name}' is not an image this page can read (use PNG, JPEG or WebP)."
        ) from err


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB copy; images with transparency are composited onto white."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def square_resize(image: Image.Image, side: int) -> Image.Image:
    """Centre-crop to a square, then resize to ``side``×``side`` (Lanczos); RGB in, RGB out."""
    width, height = image.size
    short = min(width, height)
    left, top = (width - short) // 2, (height - short) // 2
    square = image.crop((left, top, left + short, top + short))
    if short == side:
        return square
    return square.resize((side, side), Image.Resampling.LANCZOS)


def box_from_values(values: Sequence[float | int | None], *, unit: BoxUnit | str, side: int) -> Box:
    """``(top, left, bottom, right)`` typed in as fractions or as pixels of a ``side`` px image.

    Returns:
        The box as fractions of the side, rows first (the pipeline's `Box`).

    Raises:
        ValueError: a missing value, an unknown unit, a box of zero area or outside the image.
    """
    if unit not in BOX_UNITS:
        raise ValueError(f"The box unit must be one of {list(BOX_UNITS)}, got {unit!r}.")
    if len(values) != 4 or any(v is None for v in values):
        raise ValueError("Enter all four box edges: top, left, bottom, right.")
    top, left, bottom, right = (float(v) for v in values)  # type: ignore[arg-type]
    if bottom <= top or right <= left:
        raise ValueError(
            f"The box ({top:g}, {left:g}, {bottom:g}, {right:g}) has zero area: bottom must be "
            "below top and right must be right of left."
        )
    scale = float(side) if unit == "pixels" else 1.0
    limit = f"0 to {side} px" if unit == "pixels" else "0 to 1"
    box = (top / scale, left / scale, bottom / scale, right / scale)
    if min(box) < 0 or max(box) > 1:
        raise ValueError(f"The box edges must lie within the image ({limit}).")
    return validate_box(box)


def box_from_mask(mask: np.ndarray) -> Box | None:
    """Bounding box of the painted pixels of a (H, W) mask as fractions, or None if none are.

    Raises:
        ValueError: the mask is not two-dimensional.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    height, width = mask.shape
    return validate_box(
        (rows[0] / height, cols[0] / width, (rows[-1] + 1) / height, (cols[-1] + 1) / width)
    )


def painted_mask(layers: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: where any (H, W, 4) RGBA editor layer is not transparent.

    Raises:
        ValueError: a layer is not (H, W, 4) of the given ``shape``.
    """
    mask = np.zeros(shape, dtype=bool)
    for layer in layers:
        if layer.ndim != 3 or layer.shape[:2] != shape or layer.shape[2] != 4:
            raise ValueError(f"editor layer must be {(*shape, 4)}, got {layer.shape}")
        mask |= layer[..., 3] > 0
    return mask
