"""Completion by composition: the matte keys out only the ground the border reaches, and the
fitted drawing changes no pixel outside the box."""

from __future__ import annotations

import pytest
import torch

from cogview2.config import PipelineConfig
from cogview2.stages.completion import box_pixels
from cogview2.stages.composition import background_matte, compose_into_box


def _disc_with_hole(side: int = 48) -> torch.Tensor:
    """(1, 3, side, side): a red disc holding a white hole, on a white ground with VQ-like noise."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    r = ((yy - side / 2) ** 2 + (xx - side / 2) ** 2).sqrt()
    x = 1 - 0.01 * torch.rand(1, 3, side, side, generator=g)  # near-white ground
    disc = (r < side / 3)[None, None]
    x = torch.where(disc, torch.tensor([0.86, 0.18, 0.27])[None, :, None, None], x)
    hole = (r < side / 8)[None, None]
    return torch.where(hole, torch.ones_like(x), x)


def test_matte_keys_out_the_ground_the_border_reaches_and_keeps_enclosed_white() -> None:
    x = _disc_with_hole()
    alpha = background_matte(x)
    assert alpha.shape == (1, 1, 48, 48)
    assert alpha[0, 0, :3, :3].eq(0).all() and alpha[0, 0, -3:, -3:].eq(0).all()  # the ground
    assert alpha[0, 0, 24, 24] == 1  # the white hole inside the disc: enclosed, kept
    assert alpha[0, 0, 24, 12] == 1  # the disc
    assert ((alpha > 0) & (alpha < 1)).any()  # a soft edge


def test_an_object_touching_the_border_leaves_the_ground_keyed_out() -> None:
    x = _disc_with_hole()
    grey = torch.tensor([0.6, 0.6, 0.65])[None, :, None, None]
    x[..., 10:38, :6] = grey  # two bars on the left and right edges: 56 of the 188 border
    x[..., 10:38, -6:] = grey  # pixels (30 %) are not the ground's
    alpha = background_matte(x)
    assert alpha[0, 0, :3, :3].eq(0).all() and alpha[0, 0, 24, 0] == 1 and alpha[0, 0, 24, 24] == 1


def test_a_picture_without_a_plain_border_is_opaque_everywhere() -> None:
    photo = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert background_matte(photo).eq(1).all()
    with pytest.raises(ValueError, match="tolerance must be in"):
        background_matte(photo, tolerance=0)


def test_compose_keeps_every_pixel_outside_the_box_and_fits_the_drawing_centred() -> None:
    g = torch.Generator().manual_seed(2)
    background = torch.rand(1, 3, 96, 96, generator=g)
    drawing = _disc_with_hole().expand(2, -1, -1, -1)
    box = (0.25, 0.125, 0.75, 0.875)  # 48 × 72 px: the 48 px drawing goes in the middle
    assert box_pixels(box, 96) == (24, 12, 72, 84)
    out = compose_into_box(background, drawing, box)
    assert out.shape == (2, 3, 96, 96)
    outside = torch.ones(96, 96, dtype=torch.bool)
    outside[24:72, 12:84] = False
    assert torch.equal(out[:, :, outside], background[:, :, outside].expand(2, -1, -1))
    # the drawing (same size as the fitted square here) is pasted where opaque, centred
    assert torch.allclose(out[0, :, 48, 48], torch.ones(3))  # its enclosed white hole
    assert torch.allclose(out[0, :, 48, 36], torch.tensor([0.86, 0.18, 0.27]))  # its disc
    assert torch.equal(
        out[:, :, 24:72, 12:24], background[:, :, 24:72, 12:24].expand(2, -1, -1, -1)
    )
    with pytest.raises(ValueError, match="box"):
        compose_into_box(background, drawing, (0.5, 0.5, 0.4, 0.9))


def test_completion_fill_is_checked_and_saved_in_the_config() -> None:
    assert PipelineConfig().completion_fill == "infill"  # the release
    cfg = PipelineConfig(completion_fill="compose")
    assert PipelineConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"fill must be one of \['infill', 'compose'\]"):
        PipelineConfig(completion_fill="paste")
