"""Input checks of the web page (no Gradio, no pipeline, no browser)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cogview2.web.config import WebConfig
from cogview2.web.inputs import (
    box_from_mask,
    box_from_values,
    check_count,
    check_prompt,
    load_upload,
    painted_mask,
    resolve_seed,
    square_resize,
)


def test_check_prompt_strips_and_refuses_blank():
    assert check_prompt("  一个红苹果 ") == "一个红苹果"
    for bad in ("", "   \n", None):
        with pytest.raises(ValueError, match="Enter a prompt"):
            check_prompt(bad)


def test_check_count_accepts_whole_numbers_in_range():
    assert check_count(3.0, maximum=4) == 3
    for bad in (0, 5, 2.5, None, True):
        with pytest.raises(ValueError, match="number of images"):
            check_count(bad, maximum=4)


def test_resolve_seed_fixed_and_random():
    assert resolve_seed(42.0, False, max_seed=100) == 42
    seeds = {resolve_seed(None, True, max_seed=10**9) for _ in range(8)}
    assert len(seeds) > 1 and all(0 <= s <= 10**9 for s in seeds)
    for bad in (None, -1, 101, 1.5):
        with pytest.raises(ValueError, match="seed"):
            resolve_seed(bad, False, max_seed=100)


def _save(tmp_path, image, name="x.png"):
    path = tmp_path / name
    image.save(path)
    return path


def test_load_upload_reads_images_and_flattens_alpha(tmp_path):
    rgba = Image.new("RGBA", (6, 4), (10, 20, 30, 0))
    rgba.putpixel((1, 1), (200, 100, 50, 255))
    out = load_upload(_save(tmp_path, rgba), max_side=64, max_bytes=2**20)
    assert out.mode == "RGB" and out.size == (6, 4)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent → white
    assert out.getpixel((1, 1)) == (200, 100, 50)


def test_load_upload_refuses_bad_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(ValueError, match="not an image"):
        load_upload(text, max_side=64, max_bytes=2**20)
    with pytest.raises(ValueError, match="Upload an image"):
        load_upload(None, max_side=64, max_bytes=2**20)
    big = _save(tmp_path, Image.new("RGB", (65, 8)), "big.png")
    with pytest.raises(ValueError, match="65×8 px; at most 64"):
        load_upload(big, max_side=64, max_bytes=2**20)
    with pytest.raises(ValueError, match="MiB"):
        load_upload(big, max_side=64, max_bytes=10)


def test_square_resize_centre_crops():
    image = Image.new("RGB", (30, 10), (0, 0, 0))
    image.paste((255, 0, 0), (10, 0, 20, 10))  # the centre square is red
    out = square_resize(image, 5)
    assert out.size == (5, 5)
    assert np.asarray(out)[..., 0].min() > 200 and np.asarray(out)[..., 1].max() < 50


def test_box_from_values_fractions_and_pixels():
    assert box_from_values((0.1, 0.2, 0.5, 0.9), unit="fraction", side=480) == (0.1, 0.2, 0.5, 0.9)
    assert box_from_values((48, 96, 240, 480), unit="pixels", side=480) == (0.1, 0.2, 0.5, 1.0)


@pytest.mark.parametrize(
    ("values", "unit", "match"),
    [
        ((0.5, 0.2, 0.5, 0.9), "fraction", "zero area"),
        ((0.1, 0.9, 0.5, 0.2), "fraction", "zero area"),
        ((0.1, 0.2, 1.5, 0.9), "fraction", "0 to 1"),
        ((0, 0, 500, 100), "pixels", "0 to 480 px"),
        ((0.1, None, 0.5, 0.9), "fraction", "all four"),
        ((0.1, 0.2, 0.5, 0.9), "inches", "unit"),
    ],
)
def test_box_from_values_refuses(values, unit, match):
    with pytest.raises(ValueError, match=match):
        box_from_values(values, unit=unit, side=480)


def test_box_from_mask_is_the_painted_bounding_box():
    rng = np.random.default_rng(0)
    for _ in range(5):
        h, w = rng.integers(5, 40, size=2)
        mask = np.zeros((h, w), dtype=bool)
        r0, c0 = rng.integers(0, h - 1), rng.integers(0, w - 1)
        r1, c1 = rng.integers(r0 + 1, h + 1), rng.integers(c0 + 1, w + 1)
        mask[r0, c0] = mask[r1 - 1, c1 - 1] = True  # two corner strokes suffice
        assert box_from_mask(mask) == pytest.approx((r0 / h, c0 / w, r1 / h, c1 / w))
    assert box_from_mask(np.zeros((4, 4), dtype=bool)) is None
    with pytest.raises(ValueError, match="mask"):
        box_from_mask(np.zeros((4, 4, 1), dtype=bool))


def test_painted_mask_ors_layer_alpha():
    a = np.zeros((3, 4, 4), dtype=np.uint8)
    b = np.zeros((3, 4, 4), dtype=np.uint8)
    a[0, 1, 3] = 255
    b[2, 3, 3] = 7
    mask = painted_mask([a, b], (3, 4))
    assert mask.sum() == 2 and mask[0, 1] and mask[2, 3]
    with pytest.raises(ValueError, match="editor layer"):
        painted_mask([np.zeros((3, 4, 3), dtype=np.uint8)], (3, 4))


def test_web_config_validates():
    with pytest.raises(ValueError, match="max_images"):
        WebConfig(max_images=0)
    with pytest.raises(ValueError, match="default_num_images"):
        WebConfig(default_num_images=9, max_images=8)
