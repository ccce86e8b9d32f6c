"""Text-guided completion: keep every token outside a box, regenerate the inside (§7).

The low-resolution pass uses the released "move the last context token into the region" layout
(`coglm_core.infilling.infill`, single pass); the high-resolution pass runs DSR, puts the encoded
original tokens back outside the box, and runs LoPAR restricted to the box. The decoded
picture is then pasted into the original through a feathered box (`feathered_box_alpha`), as
inpainting pipelines do: the VQ-VAE's decoder sees whole 8×8 cells and its receptive field
spans the box edge, so without it the pixels outside the box would change too.
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


def box_pixels(box: Box, image_side: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` pixel bounds of a fractional box: rows ``[top, bottom)``,
    columns ``[left, right)``, each ``int(S · fraction)`` (reference.md §7.2)."""
    top, left, bottom, right = validate_box(box)
    return (
        int(image_side * top),
        int(image_side * left),
        int(image_side * bottom),
        int(image_side * right),
    )


def box_grid_mask(box: Box, image_side: int, grid: int) -> Tensor:
    """Token cells covered by the box: pixel mask ``[int(S·top), int(S·bottom)) × ...``
    nearest-resized to ``grid × grid`` and thresholded at 0.5 (reference.md §7.2).

    Returns:
        bool (grid, grid).
    """
    top, left, bottom, right = box_pixels(box, image_side)
    pix = torch.zeros(1, 1, image_side, image_side)
    pix[..., top:bottom, left:right] = 1
    cells = F.interpolate(pix, size=(grid, grid), mode="nearest")[0, 0] >= 0.5
    if not cells.any():
        raise ValueError(f"box {box!r} covers no {grid}×{grid} token cell; make it larger")
    return cells


def feathered_box_alpha(box: Box, image_side: int, feather: int) -> Tensor:
    """Blend weight of the regenerated picture: 1 inside the box's pixels, falling linearly
    to 0 at ``feather`` px outside it (Chebyshev distance), 0 beyond.

    Args:
        box: ``(top, left, bottom, right)`` fractions.
        image_side: S.
        feather: Width of the ramp in px (0: a hard edge).

    Returns:
        float32 (S, S) in [0, 1]; exactly 0 at every pixel ``feather`` px or more from the box.
    """
    top, left, bottom, right = box_pixels(box, image_side)
    if isinstance(feather, bool) or not isinstance(feather, int) or feather < 0:
        raise ValueError(f"feather must be an int >= 0 (px), got {feather!r}")
    idx = torch.arange(image_side, dtype=torch.float32)
    # distance of each row / column to the box's pixel range [start, stop)
    rows = (top - idx).clamp_min(0) + (idx - (bottom - 1)).clamp_min(0)
    cols = (left - idx).clamp_min(0) + (idx - (right - 1)).clamp_min(0)
    dist = torch.maximum(rows[:, None], cols[None, :])  # (S, S)
    if feather == 0:
        return (dist == 0).float()
    return (1 - dist / feather).clamp(0, 1)


def paste_into(original: Tensor, generated: Tensor, alpha: Tensor) -> Tensor:
    """``alpha · generated + (1 − alpha) · original``, where alpha is 0 the original's pixels
    are returned as they are.

    Args:
        original: (1, 3, S, S) float in [0, 1].
        generated: (N, 3, S, S) float in [0, 1].
        alpha: (S, S) float in [0, 1].

    Returns:
        (N, 3, S, S) float32.
    """
    a = alpha.to(generated.device)
    out = a * generated + (1 - a) * original.to(generated.device)
    return torch.where(a == 0, original.to(generated.device), out)
