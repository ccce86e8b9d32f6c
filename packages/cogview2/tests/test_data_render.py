"""SVG rendering, captions and the split rule."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from cogview2.data import CAPTION_TEMPLATES, RenderError, make_caption, render_svg, split_of

SQUARE = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
    '<rect x="3" y="3" width="4" height="4" fill="#ff0000"/></svg>'
)
WIDE = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10" viewBox="0 0 20 10">'
    '<rect width="20" height="10" fill="#0000ff"/></svg>'
)


def _pixels(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.mode == "RGB"
    return np.asarray(image)


@pytest.mark.parametrize("size", [16, 37])
def test_render_is_rgb_on_white_at_size(size):
    pixels = _pixels(render_svg(SQUARE, size))
    assert pixels.shape == (size, size, 3)
    assert (pixels[0, 0] == 255).all() and (pixels[-1, -1] == 255).all()  # white background
    assert tuple(pixels[size // 2, size // 2]) == (255, 0, 0)  # the red square, centred


def test_render_fits_non_square_drawings_centred():
    pixels = _pixels(render_svg(WIDE, 20))
    assert pixels.shape == (20, 20, 3)
    assert (pixels[0] == 255).all() and (pixels[-1] == 255).all()  # letterboxed top/bottom
    assert tuple(pixels[10, 10]) == (0, 0, 255)


def test_render_accepts_bytes():
    assert render_svg(SQUARE.encode(), 12) == render_svg(SQUARE, 12)


@pytest.mark.parametrize(
    ("svg", "reason"),
    [
        ("<svg xmlns='http://www.w3.org/2000/svg'><rect", "unrenderable"),
        ("not xml at all", "unrenderable"),
        ("<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 4 4'></svg>", "blank"),
    ],
)
def test_render_errors_carry_a_reason(svg, reason):
    with pytest.raises(RenderError) as info:
        render_svg(svg, 16)
    assert info.value.reason == reason


def test_render_rejects_bad_size():
    with pytest.raises(ValueError, match="size must be >= 1"):
        render_svg(SQUARE, 0)


RECORD = {
    "name_en": "red apple",
    "name_zh": "红苹果",
    "keywords_en": ["apple", "fruit", "red"],
    "keywords_zh": ["水果", "食物"],
    "style": "twemoji",
}


@pytest.mark.parametrize(
    ("template", "en", "zh"),
    [
        ("name_style", "red apple, twemoji style", "红苹果，twemoji风格"),
        ("name", "red apple", "红苹果"),
        (
            "name_keywords_style",
            "red apple, apple, fruit, twemoji style",
            "红苹果，水果，食物，twemoji风格",
        ),
    ],
)
def test_captions_in_both_languages(template, en, zh):
    assert make_caption(RECORD, "en", template) == en
    assert make_caption(RECORD, "zh", template) == zh


def test_caption_without_keywords_and_bad_arguments():
    bare = {**RECORD, "keywords_en": [], "keywords_zh": []}
    assert make_caption(bare, "en", "name_keywords_style") == "red apple, twemoji style"
    assert make_caption(bare, "zh", "name_keywords_style") == "红苹果，twemoji风格"
    with pytest.raises(ValueError, match="unknown caption template"):
        make_caption(RECORD, "en", "poem")
    with pytest.raises(ValueError, match="lang must be"):
        make_caption(RECORD, "fr")  # type: ignore[arg-type]
    assert set(CAPTION_TEMPLATES) == {"name_style", "name", "name_keywords_style"}


def test_split_is_deterministic_seeded_and_near_the_fraction():
    concepts = [f"{0x1F300 + i:X}" for i in range(4000)]
    first = [split_of(c, seed=7, heldout_fraction=0.1) for c in concepts]
    assert first == [split_of(c, seed=7, heldout_fraction=0.1) for c in concepts]
    counts = Counter(first)
    assert 0.08 < counts["heldout"] / len(concepts) < 0.12
    other = [split_of(c, seed=8, heldout_fraction=0.1) for c in concepts]
    assert other != first
    assert {split_of(c, seed=7, heldout_fraction=0.0) for c in concepts} == {"train"}
    with pytest.raises(ValueError, match=r"heldout_fraction must be in \[0, 1\)"):
        split_of("1F34E", seed=0, heldout_fraction=1.0)
