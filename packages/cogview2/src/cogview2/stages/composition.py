"""Completion by composition (``fill="compose"``, not in the release): draw the prompt as a whole
picture with the text-to-image hierarchy, fit it into the box and key out its background.

The release fills the box by infilling: the stage-1 CogLM continues the picture around the box
under the prompt. A model that never saw one concept inside another (the emoji demo weights, each
picture one concept on a plain ground) continues the ground instead: on the demo weights the
box was closer to the ground than to the prompt's concept in 12 of 12 measured pairs
(docs/deviations.md #25). Composition asks the model
only what it was trained for, a whole picture of the prompt, and places it; the pixels around
the drawn object (a plain ground, keyed out by `background_matte`) stay the input's own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .completion import Box, box_pixels


def background_matte(pictures: Tensor, tolerance: float = 0.03) -> Tensor:
    """Opacity of each pixel against the picture's plain ground: 0 on the ground, the pixels
    within ``tolerance`` (max over RGB) of the border's median colour that the border reaches
    through such pixels (8-connected), 1 elsewhere, the edge softened by a 3×3 mean.

    Connectivity keeps enclosed areas of the ground's colour opaque (a panda's white face), which
    a plain colour key would punch out. A picture whose border is mostly not one colour (a photo:
    under half of its border pixels within ``tolerance`` of their median) has no ground to key
    out and is opaque everywhere; an object that touches the border (a salt shaker drawn from
    top to bottom) does not make the ground less plain.

    Args:
        pictures: (N, 3, H, W) float in [0, 1].
        tolerance: Largest channel difference from the ground colour still counted as ground
            (0.03: the VQ-VAE's decoded white grounds differ by 0.01 at the 90th percentile, the
            demo's light greys from white by 0.04 or more).

    Returns:
        (N, 1, H, W) float32 in [0, 1].
    """
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance!r}")
    x = pictures.float()
    border = torch.cat([x[..., 0, :], x[..., -1, :], x[..., :, 0], x[..., :, -1]], dim=-1)
    ground = border.median(dim=-1).values  # (N, 3)
    border_diff = (border - ground[..., None]).abs().amax(dim=1)  # (N, P)
    plain = (border_diff <= tolerance).float().mean(dim=-1) >= 0.5  # (N,)
    diff = (x - ground[..., None, None]).abs().amax(dim=1, keepdim=True)  # (N, 1, H, W)
    ground_like = (diff <= tolerance).float()
    reached = torch.zeros_like(ground_like)
    reached[..., 0, :] = reached[..., -1, :] = reached[..., :, 0] = reached[..., :, -1] = 1
    reached *= ground_like
    while True:  # flood fill from the border: grow by one pixel until nothing changes
        grown = F.max_pool2d(reached, 3, stride=1, padding=1) * ground_like
        if torch.equal(grown, reached):
            break
        reached = grown
    alpha = F.avg_pool2d(1 - reached, 3, stride=1, padding=1, count_include_pad=False)
    return torch.where(plain[:, None, None, None], alpha, torch.ones_like(alpha))


def compose_into_box(background: Tensor, pictures: Tensor, box: Box) -> Tensor:
    """Fit each picture into the box (aspect kept, centred), key out its ground, and paint it
    over the background. Pixels outside the box are the background's own.

    Args:
        background: (1, 3, S, S) float in [0, 1].
        pictures: (N, 3, s, s) float in [0, 1], square (the pipeline's drawings).
        box: ``(top, left, bottom, right)`` fractions.

    Returns:
        (N, 3, S, S) float32.
    """
    side = background.shape[-1]
    top, left, bottom, right = box_pixels(box, side)
    fit = min(bottom - top, right - left)
    if fit < 1:
        raise ValueError(f"box {box!r} is less than a pixel wide at {side} px")
    small = F.interpolate(
        pictures.float(), size=(fit, fit), mode="bilinear", antialias=True, align_corners=False
    ).clamp(0, 1)  # (N, 3, fit, fit)
    alpha = background_matte(small)
    y = top + (bottom - top - fit) // 2
    x = left + (right - left - fit) // 2
    out = background.float().to(small.device).expand(len(small), -1, -1, -1).clone()
    region = out[..., y : y + fit, x : x + fit]
    out[..., y : y + fit, x : x + fit] = alpha * small + (1 - alpha) * region
    return out
