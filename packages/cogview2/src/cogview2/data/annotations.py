"""Emoji names, keywords, groups and subgroups in English and Chinese.

Names and keywords come from the Unicode CLDR annotations (``cldr-annotations-full`` for
single emoji, ``cldr-annotations-derived-full`` for sequences such as skin tones and
families); the group and subgroup (e.g. ``food-drink`` / ``food-fruit``) and the canonical
order come from ``emojibase-data``. Everything is keyed by a normalised code (:func:`normalize_code`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "SKIN_TONE_MODIFIERS",
    "EmojiInfo",
    "code_of",
    "concept_of",
    "load_emoji_table",
    "normalize_code",
    "slugify",
]

VARIATION_SELECTOR_16 = 0xFE0F
SKIN_TONE_MODIFIERS = frozenset(range(0x1F3FB, 0x1F400))
"""U+1F3FB..U+1F3FF: variants that differ only by these share one concept (and split)."""


@dataclass(frozen=True)
class EmojiInfo:
    """Everything the data set records about one emoji, independent of art style.

    Attributes:
        code: normalised code, e.g. ``"1F34E"`` or ``"1F44B-1F3FB"`` (see :func:`normalize_code`).
        emoji: the fully-qualified emoji string, e.g. ``"🍎"``.
        concept: the code without skin-tone modifiers; the unit of the train/held-out split.
        name_en: CLDR English name, e.g. ``"red apple"``.
        name_zh: CLDR Chinese (``zh``) name, e.g. ``"红苹果"``.
        keywords_en: CLDR English keywords, without the name itself.
        keywords_zh: CLDR Chinese keywords, without the name itself.
        group: emojibase group key, e.g. ``"food-drink"``.
        subgroup: emojibase subgroup key, e.g. ``"food-fruit"``.
        group_id: emojibase group number (0-based, Unicode order).
        subgroup_id: emojibase subgroup number (0-based, Unicode order).
        order: position in the Unicode emoji order.
    """

    code: str
    emoji: str
    concept: str
    name_en: str
    name_zh: str
    keywords_en: tuple[str, ...]
    keywords_zh: tuple[str, ...]
    group: str
    subgroup: str
    group_id: int
    subgroup_id: int
    order: int


def normalize_code(code: str) -> str:
    """Normalise a code-point file name or hexcode: ``"1f44b_1F3FB"`` -> ``"1F44B-1F3FB"``.

    Code points are upper-case hex, at least 4 digits, joined by ``-``; U+FE0F is dropped
    (twemoji and CLDR omit it where openmoji and emojibase keep it).

    Raises:
        ValueError: ``code`` is not hex code points separated by ``-`` or ``_``.
    """
    parts = [p for p in re.split(r"[-_\s]+", code.strip()) if p]
    if not parts or not all(re.fullmatch(r"[0-9a-fA-F]{1,6}", p) for p in parts):
        raise ValueError(f"{code!r} is not a code-point sequence like '1f44b-1f3fb'")
    points = [int(p, 16) for p in parts]
    return "-".join(f"{p:04X}" for p in points if p != VARIATION_SELECTOR_16)


def code_of(emoji: str) -> str:
    """Normalised code of an emoji string: ``code_of("❤️") == "2764"``."""
    return normalize_code("-".join(f"{ord(c):X}" for c in emoji))


def concept_of(code: str) -> str:
    """The code with skin-tone modifiers removed: the concept shared by all its variants."""
    return "-".join(p for p in code.split("-") if int(p, 16) not in SKIN_TONE_MODIFIERS)


def slugify(name: str) -> str:
    """``"A button (blood type)"`` -> ``"a-button-blood-type"`` (how fluentui-emoji names files)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = ascii_name.replace("'", "").lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} is missing")
    return json.loads(path.read_text(encoding="utf-8"))


def _cldr(root: Path, kind: str, lang: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """code -> (name, keywords) from one CLDR annotations file."""
    data = _read_json(root / kind / lang / "annotations.json")[kind]["annotations"]
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for emoji, fields in data.items():
        names = fields.get("tts") or []
        if not names:
            continue
        name = names[0]
        keywords = tuple(k for k in fields.get("default", []) if k != name)
        out[code_of(emoji)] = (name, keywords)
    return out


def _emojibase_entries(root: Path) -> list[dict[str, Any]]:
    """Flat list of emojibase entries: each emoji, then its skin-tone variants."""
    flat: list[dict[str, Any]] = []
    for entry in _read_json(root / "en" / "data.json"):
        flat.append(entry)
        flat.extend(entry.get("skins", []))
    return flat


def load_emoji_table(
    cldr_root: str | Path, cldr_derived_root: str | Path, emojibase_root: str | Path
) -> tuple[dict[str, EmojiInfo], dict[str, int]]:
    """Join CLDR names/keywords (en, zh) with emojibase groups into one table.

    Args:
        cldr_root: extracted ``cldr-annotations-full`` package root.
        cldr_derived_root: extracted ``cldr-annotations-derived-full`` package root.
        emojibase_root: extracted ``emojibase-data`` package root.

    Returns:
        ``(table, dropped)``: code -> :class:`EmojiInfo` in Unicode order, and counts of
        emojibase entries left out by reason (``no_group``: e.g. regional indicators;
        ``no_english_name`` / ``no_chinese_name``: missing from CLDR).
    """
    cldr_root, cldr_derived_root, emojibase_root = map(
        Path, (cldr_root, cldr_derived_root, emojibase_root)
    )
    names: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
    for lang in ("en", "zh"):
        names[lang] = _cldr(cldr_derived_root, "annotationsDerived", lang)
        names[lang].update(_cldr(cldr_root, "annotations", lang))
    messages = _read_json(emojibase_root / "en" / "messages.json")
    group_keys = {g["order"]: g["key"] for g in messages["groups"]}
    subgroup_keys = {g["order"]: g["key"] for g in messages["subgroups"]}

    table: dict[str, EmojiInfo] = {}
    dropped = {"no_group": 0, "no_english_name": 0, "no_chinese_name": 0}
    for entry in _emojibase_entries(emojibase_root):
        code = normalize_code(entry["hexcode"])
        if "group" not in entry or "subgroup" not in entry:
            dropped["no_group"] += 1
            continue
        if code not in names["en"]:
            dropped["no_english_name"] += 1
            continue
        if code not in names["zh"]:
            dropped["no_chinese_name"] += 1
            continue
        (name_en, kw_en), (name_zh, kw_zh) = names["en"][code], names["zh"][code]
        table[code] = EmojiInfo(
            code=code,
            emoji=entry["emoji"],
            concept=concept_of(code),
            name_en=name_en,
            name_zh=name_zh,
            keywords_en=kw_en,
            keywords_zh=kw_zh,
            group=group_keys[entry["group"]],
            subgroup=subgroup_keys[entry["subgroup"]],
            group_id=int(entry["group"]),
            subgroup_id=int(entry["subgroup"]),
            order=int(entry.get("order", len(table))),
        )
    ordered = dict(sorted(table.items(), key=lambda item: (item[1].order, item[0])))
    return ordered, dropped
