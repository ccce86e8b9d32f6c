"""Text-guided completion: keep every token outside a box, regenerate the inside (§7).

The low-resolution pass uses the released "move the last context token into the region" layout
(`coglm_core.infilling.infill`, single pass); the high-resolution pass runs DSR, puts the encoded
original tokens back outside the box, and runs LoPAR restricted to the box.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Box = tuple[float, float, float, float]
"""``(top, left, bottom, right)`` as fractions of the image side, rows first (the release's
``h0, w0, h1, w1``)."""


def validate_box(box: Box) -> Box:
    """Check a fractional box; ValueError says what is wrong."""
    if len(box) != 4:
        raise ValueError(f"box must be (top, left, bottom, right) fractions, got {box!r}")
    top, left, bottom, right = (float(x) for x in box)
    if not (0.0 <= top < bottom <= 1.0 and 0.0 <= left < right <= 1.0):
        raise ValueError(
            f"box {box!r} must satisfy 0 <= top < bottom <= 1 and 0 <= left < right <= 1 "
            "(fractions of the image side, rows first)"
        )
    return (top, left, bottom, right)


def box_grid_mask(box: Box, image_side: int, grid: int) -> Tensor:
    """Token cells covered by the box: pixel mask ``[int(S·top), int(S·bottom)) × ...``
    nearest-resized to ``grid × grid`` and thresholded at 0.5 (reference.md §7.2).

    Returns:
        bool (grid, grid).
    """
    top, left, bottom, right = validate_box(box)
    pix = torch.zeros(1, 1, image_side, image_side)
    pix[
        ...,
        int(image_side * top) : int(image_side * bottom),
        int(image_side * left) : int(image_side * right),
    ] = 1
    cells = F.interpolate(pix, size=(grid, grid), mode="nearest")[0, 0] >= 0.5
    if not cells.any():
        raise ValueError(f"box {box!r} covers no {grid}×{grid} token cell; make it larger")
    return cells
