"""A PNG grid of samples with each prompt written under its image."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["sample_grid"]

_LINE_HEIGHT = 14
_MARGIN = 4
_FONT_SIZE = 11
CAPTION_FONTS = (
    "DejaVuSans.ttf",
    "LiberationSans-Regular.ttf",
    "NotoSans-Regular.ttf",
    "Arial.ttf",
)
"""TrueType fonts tried, in order, for the captions (found in the system's font folders).
Pillow's built-in font lacks accented letters ("São Tomé" prints boxes); it is the fallback."""


def caption_font(size: int = _FONT_SIZE) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The first of `CAPTION_FONTS` installed, else Pillow's built-in font."""
    for name in CAPTION_FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def sample_grid(
    images: Sequence[Image.Image],
    captions: Sequence[str],
    *,
    columns: int = 4,
    tile: int = 160,
    caption_lines: int = 2,
) -> Image.Image:
    """Images in rows of ``columns``, each resized to ``tile`` px with its caption below.

    Args:
        images: The samples.
        captions: One caption per image (wrapped to ``caption_lines`` lines, then cut).
        columns: Images per row.
        tile: Image side in the grid (px).
        caption_lines: Text lines under each image.

    Returns:
        An RGB image on white.
    """
    if len(images) != len(captions) or not images or columns < 1 or tile < 8:
        raise ValueError(
            f"need one caption per image (got {len(images)} images, {len(captions)} captions), "
            f"at least one image, columns >= 1 and tile >= 8"
        )
    font = caption_font()
    chars = max(8, tile // 7)  # the caption fonts are about 6 px per character
    cell_h = tile + _MARGIN + caption_lines * _LINE_HEIGHT + _MARGIN
    rows = -(-len(images) // columns)
    width = min(columns, len(images)) * (tile + _MARGIN) + _MARGIN
    grid = Image.new("RGB", (width, rows * cell_h + _MARGIN), "white")
    draw = ImageDraw.Draw(grid)
    for k, (image, caption) in enumerate(zip(images, captions, strict=True)):
        x = _MARGIN + (k % columns) * (tile + _MARGIN)
        y = _MARGIN + (k // columns) * cell_h
        grid.paste(image.convert("RGB").resize((tile, tile), Image.BICUBIC), (x, y))
        lines = textwrap.wrap(caption, chars)[:caption_lines]
        for j, line in enumerate(lines):
            draw.text((x, y + tile + _MARGIN + j * _LINE_HEIGHT), line, fill="black", font=font)
    return grid


def save_png(image: Image.Image, path: Path) -> Path:
    """Save a PNG atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)
    return path
