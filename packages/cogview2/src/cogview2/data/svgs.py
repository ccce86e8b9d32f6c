"""Find the SVG of each emoji inside an extracted art package."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from .annotations import EmojiInfo, normalize_code, slugify
from .sources import StyleSource

__all__ = ["discover_svgs", "read_svg"]

SvgSource = Path | str
"""A file holding one SVG, or (for sprites) the SVG text itself."""


def _sprite_children(sprite: Path) -> dict[str, str]:
    """id -> standalone SVG text for each top-level ``<svg id=...>`` child of a sprite."""
    root = ET.parse(sprite).getroot()
    out: dict[str, str] = {}
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == "svg" and child.get("id"):
            out[child.get("id", "")] = ET.tostring(child, encoding="unicode")
    return out


def _match_slug(name: str, by_slug: Mapping[str, str]) -> str | None:
    """Code for a fluentui-emoji file name: ``red-apple``, ``baby-default``, ``baby-light``.

    Fluent names a skin-tone variant ``<name>-<tone>`` where CLDR says ``<name>: <tone> skin
    tone``, and the toneless (yellow) one ``<name>-default``.
    """
    for candidate in (name, name.removesuffix("-default"), f"{name}-skin-tone"):
        if candidate in by_slug:
            return by_slug[candidate]
    return None


def discover_svgs(
    style: StyleSource, package_root: str | Path, table: Mapping[str, EmojiInfo]
) -> tuple[dict[str, SvgSource], dict[str, int]]:
    """Map the emoji of ``table`` to this style's SVGs.

    Args:
        style: the art style (layout, path and naming of its SVGs).
        package_root: the extracted npm package root.
        table: code -> emoji info (:func:`load_emoji_table`).

    Returns:
        ``(found, counts)``: code -> SVG source, in file-name order; and counts of SVGs that
        name no emoji of the table (``unmatched``, e.g. private-use extras) or repeat one
        already found (``duplicate``).

    Raises:
        FileNotFoundError: the style's directory or sprite is not in ``package_root``.
    """
    location = Path(package_root) / style.path
    if style.layout == "sprite":
        if not location.is_file():
            raise FileNotFoundError(f"style {style.name!r}: sprite {location} is missing")
        items: list[tuple[str, SvgSource]] = sorted(_sprite_children(location).items())
    else:
        if not location.is_dir():
            raise FileNotFoundError(f"style {style.name!r}: SVG directory {location} is missing")
        items = [(p.stem, p) for p in sorted(location.glob("*.svg"))]

    by_slug = {slugify(info.name_en): code for code, info in table.items()}
    found: dict[str, SvgSource] = {}
    counts = {"unmatched": 0, "duplicate": 0}
    for name, source in items:
        if style.naming == "slug":
            code = _match_slug(name.lower(), by_slug)
        else:
            try:
                code = normalize_code(name)
            except ValueError:
                code = None
        if code is None or code not in table:
            counts["unmatched"] += 1
        elif code in found:
            counts["duplicate"] += 1
        else:
            found[code] = source
    return found, counts


def read_svg(source: SvgSource) -> bytes:
    """The SVG bytes of a source returned by :func:`discover_svgs`."""
    return source.read_bytes() if isinstance(source, Path) else source.encode("utf-8")
