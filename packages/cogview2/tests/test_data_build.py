"""Build a tiny data set from the shipped fixture packages and read it back."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cogview2.data import (
    BuildConfig,
    EmojiDataset,
    build_emoji_dataset,
    export_png_folder,
    load_manifest,
    render_svg,
    verify_shards,
)

# seed 3 with fraction 0.5 holds out 1F44B (with its skin tone), 1F43C and 1F34E
CONFIG = BuildConfig(
    styles=("twemoji", "openmoji"),
    sizes=(16, 40),
    heldout_fraction=0.5,
    seed=3,
    samples_per_shard=3,
    progress=False,
)


@pytest.fixture(scope="session")
def roots(emoji_roots, emoji_npm):
    """Every style's package: the shared roots plus noto and fluent."""
    return {
        **emoji_roots,
        "@svgmoji/noto": emoji_npm / "svgmoji-noto",
        "fluentui-emoji": emoji_npm / "fluentui-emoji",
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory, roots):
    out = tmp_path_factory.mktemp("emoji")
    manifest = build_emoji_dataset(roots, out, CONFIG)
    return out, manifest


def _records(out: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text("utf-8").splitlines()]


def test_counts_and_skips(built):
    out, manifest = built
    assert manifest == load_manifest(out)
    twemoji, openmoji = manifest["styles"]["twemoji"], manifest["styles"]["openmoji"]
    # twemoji: 7 matched SVGs; 1F600 is corrupt, 1F4A4 draws nothing, e50a is private use
    assert twemoji["skipped"] == {"unmatched": 1, "duplicate": 0, "unrenderable": 1, "blank": 1}
    assert twemoji["samples"] == {"train": 1, "heldout": 4}
    assert openmoji["samples"] == {"train": 2, "heldout": 3}
    assert openmoji["missing_svg"] == 2  # no 1F4A4, no 1F44B-1F3FB
    assert manifest["splits"]["train"]["samples"] == 3
    assert [s["samples"] for s in manifest["splits"]["heldout"]["shards"]] == [3, 3, 1]
    assert manifest["sizes"] == [16, 40] and manifest["format_version"] == 1
    assert "CC-BY-SA-4.0" in manifest["sources"]["openmoji"]["licence"]
    readme = (out / "README.md").read_text("utf-8")
    assert "All emojis designed by OpenMoji" in readme and "CC-BY 4.0" in readme


def test_split_is_by_emoji_never_by_style(built):
    out, _ = built
    train, heldout = _records(out, "train"), _records(out, "heldout")
    assert {r["concept"] for r in train} == {"2764", "1F600"}  # 1F600: openmoji only
    assert {r["concept"] for r in heldout} == {"1F44B", "1F43C", "1F34E"}
    assert {r["style"] for r in heldout} == {"twemoji", "openmoji"}
    assert "1F44B-1F3FB" in {r["code"] for r in heldout}  # skin tone follows its concept


def test_records_carry_captions_and_raw_fields(built):
    out, _ = built
    apple = next(r for r in _records(out, "heldout") if r["key"] == "openmoji/1F34E")
    assert apple["caption_en"] == "red apple, openmoji style"
    assert apple["caption_zh"] == "红苹果，openmoji风格"
    assert apple["keywords_zh"] == ["水果", "食物"]
    assert (apple["group"], apple["subgroup"]) == ("food-drink", "food-fruit")


def test_shard_round_trip_matches_a_fresh_render(built, emoji_npm):
    out, _ = built
    dataset = EmojiDataset(out, "heldout", 40)
    index = next(i for i, r in enumerate(dataset.records) if r["key"] == "twemoji/1F34E")
    item = dataset[index]
    expected = render_svg((emoji_npm / "twemoji-svg" / "1f34e.svg").read_bytes(), 40)
    assert dataset.image_bytes(index) == expected
    pixels = np.array(Image.open(io.BytesIO(expected)))
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 40, 40)
    assert torch.equal(item["image"], torch.from_numpy(pixels).permute(2, 0, 1))
    assert item["caption_en"] == "red apple, twemoji style" and item["group_id"] == 4
    pil = EmojiDataset(out, "heldout", 16, image_format="pil")[index]["image"]
    assert pil.size == (16, 16) and pil.mode == "RGB"


def test_dataset_order_filters_and_collate(built):
    out, _ = built
    dataset = EmojiDataset(out, "heldout", 16)
    keys = [dataset[i]["key"] for i in range(len(dataset))]
    assert keys == [r["key"] for r in _records(out, "heldout")]
    assert keys[:4] == ["twemoji/1F44B", "twemoji/1F44B-1F3FB", "twemoji/1F43C", "twemoji/1F34E"]
    assert len(EmojiDataset(out, "heldout", 16, styles=["openmoji"])) == 3
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 3, 16, 16) and len(batch["caption_zh"]) == 4
    captions = EmojiDataset(out, "train", 16, caption_template="name")
    assert {captions[i]["caption_zh"] for i in range(len(captions))} == {"红心", "嘿嘿"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "test"}, "split must be one of"),
        ({"size": 32}, "size 32 not in this data set"),
        ({"styles": ["noto"]}, "not in this data set"),
        ({"image_format": "numpy"}, "image_format must be"),
        ({"caption_template": "poem"}, "unknown caption template"),
    ],
)
def test_dataset_rejects_bad_arguments(built, kwargs, message):
    out, _ = built
    with pytest.raises(ValueError, match=message):
        EmojiDataset(out, **{"split": "train", "size": 16, **kwargs})


def test_verify_detects_tampering_and_rebuild_is_byte_identical(built, tmp_path, roots):
    out, manifest = built
    verify_shards(out)
    copy = tmp_path / "copy"
    again = build_emoji_dataset(roots, copy, CONFIG)
    for split in ("train", "heldout"):
        assert again["splits"][split]["shards"] == manifest["splits"][split]["shards"]
    shard = copy / manifest["splits"]["heldout"]["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its sha256"):
        verify_shards(copy)
    with pytest.raises(ValueError, match="already holds a data set"):
        build_emoji_dataset(roots, copy, CONFIG)


def test_four_styles_and_limit(tmp_path, roots):
    config = BuildConfig(
        styles=("noto", "fluent"), sizes=(12,), heldout_fraction=0.0, limit=3, progress=False
    )
    manifest = build_emoji_dataset(roots, tmp_path, config)
    assert manifest["emoji"]["selected"] == 3  # 1F600, 1F4A4, 1F44B-1F3FB: evenly spaced
    keys = [r["key"] for r in _records(tmp_path, "train")]
    assert keys == ["fluent/1F4A4", "fluent/1F44B-1F3FB"]
    assert manifest["styles"]["noto"]["skipped"]["unmatched"] == 1


def test_export_png_folder(built, tmp_path):
    out, _ = built
    exported = export_png_folder(out, tmp_path / "pngs", split="heldout", size=16)
    images = sorted(p.name for p in (exported / "images").iterdir())
    assert len(images) == 7 and "twemoji_1F34E.png" in images
    assert Image.open(exported / "images" / "twemoji_1F34E.png").size == (16, 16)
    captions = (exported / "captions.txt").read_text("utf-8").splitlines()
    assert "red apple, twemoji style" in captions and "红苹果，twemoji风格" in captions
    rows = [
        json.loads(line) for line in (exported / "metadata.jsonl").read_text("utf-8").splitlines()
    ]
    assert {r["file"] for r in rows} == {f"images/{name}" for name in images}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"styles": ("pixel",)}, "unknown style"),
        ({"styles": ()}, "styles must be non-empty"),
        ({"sizes": (4,)}, r"sizes must be non-empty, each in \[8, 4096\]"),
        ({"sizes": (16, 16)}, "sizes must be distinct"),
        ({"heldout_fraction": -0.1}, "heldout_fraction"),
        ({"limit": 0}, "limit must be >= 1"),
        ({"workers": 0}, "workers must be >= 1"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BuildConfig(**kwargs)


def test_missing_package_root_is_named(tmp_path, roots):
    roots = {k: v for k, v in roots.items() if k != "openmoji"}
    with pytest.raises(ValueError, match="package_roots lacks \\['openmoji'\\]"):
        build_emoji_dataset(roots, tmp_path, CONFIG)
