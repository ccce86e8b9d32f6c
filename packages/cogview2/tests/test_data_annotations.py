"""Emoji table (CLDR + emojibase), code normalisation and SVG discovery, on shipped fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from cogview2.data import STYLES, load_emoji_table, normalize_code
from cogview2.data.annotations import code_of, concept_of, slugify
from cogview2.data.svgs import discover_svgs, read_svg

FIXTURES = Path(__file__).parent / "fixtures" / "emoji_npm"


@pytest.fixture(scope="module")
def table():
    table, dropped = load_emoji_table(
        FIXTURES / "cldr-annotations-full",
        FIXTURES / "cldr-annotations-derived-full",
        FIXTURES / "emojibase-data",
    )
    assert dropped == {"no_group": 1, "no_english_name": 0, "no_chinese_name": 0}
    return table


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1f34e", "1F34E"),
        ("2764-FE0F", "2764"),
        ("1f44b_1F3FB", "1F44B-1F3FB"),
        ("a9", "00A9"),
        ("0023-fe0f-20e3", "0023-20E3"),
    ],
)
def test_normalize_code(raw, expected):
    assert normalize_code(raw) == expected


@pytest.mark.parametrize("bad", ["", "red-apple", "1f34e-zz", "1234567"])
def test_normalize_code_rejects_non_codes(bad):
    with pytest.raises(ValueError, match="code-point sequence"):
        normalize_code(bad)


def test_code_concept_slug():
    assert code_of("❤️") == code_of("❤") == "2764"
    assert concept_of(code_of("👋🏻")) == "1F44B"
    assert concept_of("1F469-1F3FC-200D-1F52C") == "1F469-200D-1F52C"
    assert slugify("A button (blood type)") == "a-button-blood-type"
    assert slugify("piñata") == "pinata"
    assert slugify("man’s shoe") == "mans-shoe"  # as fluentui-emoji names it


def test_table_joins_names_keywords_and_groups(table):
    assert list(table) == ["1F600", "2764", "1F4A4", "1F44B", "1F44B-1F3FB", "1F43C", "1F34E"]
    apple = table["1F34E"]
    assert (apple.emoji, apple.name_en, apple.name_zh) == ("🍎", "red apple", "红苹果")
    assert apple.keywords_en == ("apple", "fruit", "red")
    assert apple.keywords_zh == ("水果", "食物")  # the name itself is not a keyword
    assert (apple.group, apple.subgroup, apple.group_id, apple.subgroup_id) == (
        "food-drink",
        "food-fruit",
        4,
        5,
    )
    toned = table["1F44B-1F3FB"]  # from the derived (sequence) annotations
    assert (toned.name_en, toned.name_zh, toned.concept) == (
        "waving hand: light skin tone",
        "挥手: 较浅肤色",
        "1F44B",
    )
    assert table["2764"].emoji == "❤️"


def test_discover_codepoint_files(table):
    found, counts = discover_svgs(STYLES["twemoji"], FIXTURES / "twemoji-svg", table)
    assert sorted(found) == sorted(
        ["1F34E", "1F43C", "1F44B", "1F44B-1F3FB", "2764", "1F600", "1F4A4"]
    )
    assert counts == {"unmatched": 1, "duplicate": 0}  # e50a.svg: private use
    assert read_svg(found["1F34E"]).startswith(b"<svg")
    found, counts = discover_svgs(STYLES["openmoji"], FIXTURES / "openmoji", table)
    assert "2764" in found and counts["unmatched"] == 1  # 2764-FE0F.svg; E000.svg


def test_discover_sprite(table):
    found, counts = discover_svgs(STYLES["noto"], FIXTURES / "svgmoji-noto", table)
    assert sorted(found) == ["1F34E", "2764"]
    assert counts["unmatched"] == 1  # regional indicator: not in the table
    svg = read_svg(found["1F34E"]).decode()
    assert "radialGradient" in svg and 'id="2764' not in svg


def test_discover_slug_files_with_skin_tones(table):
    found, counts = discover_svgs(STYLES["fluent"], FIXTURES / "fluentui-emoji", table)
    names = {code: Path(src).name for code, src in found.items()}
    assert names == {
        "1F34E": "red-apple.svg",
        "1F44B": "waving-hand-default.svg",
        "1F44B-1F3FB": "waving-hand-light.svg",
        "1F4A4": "zzz.svg",
    }
    assert counts == {"unmatched": 1, "duplicate": 0}


def test_discover_missing_directory_is_clear(table, tmp_path):
    with pytest.raises(FileNotFoundError, match="style 'openmoji'"):
        discover_svgs(STYLES["openmoji"], tmp_path, table)
