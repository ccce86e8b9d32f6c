"""Render one SVG to a square RGB PNG on a white background, with resvg (``resvg-py``)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

__all__ = ["BACKGROUND", "RenderError", "render_svg"]

BACKGROUND = (255, 255, 255)
"""Every render is composited on white."""


class RenderError(ValueError):
    """An SVG could not be parsed or drew nothing; the builder skips it and counts it.

    Attributes:
        reason: ``"unrenderable"`` (resvg failed) or ``"blank"`` (it drew nothing).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _resvg() -> Any:
    try:
        import resvg_py
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "rendering SVGs needs resvg-py: pip install 'cogview2[data]' (or pip install resvg-py)"
        ) from err
    return resvg_py


def render_svg(svg: bytes | str, size: int) -> bytes:
    """Render ``svg`` to a ``size`` x ``size`` RGB PNG, composited on white.

    A non-square drawing is scaled to fit and centred. System fonts are not loaded (emoji
    art is paths), which keeps renders fast and the same on every machine.

    Args:
        svg: SVG document (UTF-8 bytes or text).
        size: output side in pixels, >= 1.

    Returns:
        PNG bytes of an RGB image of shape (size, size, 3).

    Raises:
        ValueError: ``size`` < 1.
        RenderError: resvg cannot parse or draw ``svg``, or the drawing is blank (all white).
    """
    if size < 1:
        raise ValueError(f"size must be >= 1 pixel, got {size}")
    text = svg.decode("utf-8", errors="replace") if isinstance(svg, bytes) else svg
    try:
        png = bytes(
            _resvg().svg_to_bytes(svg_string=text, width=size, height=size, skip_system_fonts=True)
        )
        rgba = Image.open(io.BytesIO(png)).convert("RGBA")
    except (ValueError, OSError, RuntimeError) as err:
        raise RenderError(f"resvg could not render the SVG: {err}", "unrenderable") from err
    if rgba.size != (size, size):
        scale = size / max(rgba.size)
        fitted = rgba.resize(
            (max(1, round(rgba.width * scale)), max(1, round(rgba.height * scale))),
            Image.Resampling.LANCZOS,
        )
        rgba = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        rgba.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    canvas = Image.new("RGBA", (size, size), (*BACKGROUND, 255))
    rgb = Image.alpha_composite(canvas, rgba).convert("RGB")
    if rgb.getextrema() == tuple((v, v) for v in BACKGROUND):
        raise RenderError("the SVG drew nothing (the render is all background)", "blank")
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return out.getvalue()
