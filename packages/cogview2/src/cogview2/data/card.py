"""The README written into a built data set: contents, format, and licences with attribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coglm_core import atomic_write_text

__all__ = ["write_dataset_readme"]

_FORMAT = """\
## Format (version {format_version})

- `manifest.json`: counts, styles, sizes, split rule, caption templates, skipped counts,
  licences, and the sha256 of every shard.
- `<split>.jsonl` (`train`, `heldout`): one JSON record per sample (one emoji in one
  style): `key`, `style`, `code`, `emoji`, `concept`, `name_en`, `name_zh`, `keywords_en`,
  `keywords_zh`, `group`, `subgroup`, `group_id`, `subgroup_id`, `order`, `caption_en`,
  `caption_zh`, `shard`, and `images`: `{{"<size>": [byte offset, length]}}` of the PNG in
  the shard.
- `<split>-NNNNN.tar`: uncompressed tar shards; member `<style>/<code>.<size>.png` is an
  RGB PNG rendered on white with resvg.

Read it with `cogview2.data.EmojiDataset(path, split="train", size=160)`, or export plain
PNG folders with `cogview2 data export`.

The split is **by emoji concept** (an emoji without its skin-tone modifiers), never by
style: every style of a held-out emoji is held out, so held-out prompts name unseen
concepts. Rule: `{split_rule}` with seed {seed} and held-out fraction {heldout_fraction}.
"""

_LICENCES = """\
## Licences and attribution

The renders are adaptations of the artwork below and keep each art set's licence; the
captions derive from the Unicode CLDR annotations. Use a sample under the licence of its
style, and keep these credits when you redistribute the data set or images from it.
OpenMoji renders are under CC BY-SA 4.0 (ShareAlike: adaptations must carry the same
licence); Twemoji renders need attribution under CC-BY 4.0.

| source | version | licence | attribution |
|---|---|---|---|
"""


def write_dataset_readme(out: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``out/README.md`` describing the data set of ``manifest``; returns its path."""
    lines = [
        "# CogView2 emoji text–image data set",
        "",
        "Emoji artwork in several styles, rendered at "
        + ", ".join(f"{s}×{s}" for s in manifest["sizes"])
        + " px on white, with English and Chinese names, keywords and captions "
        '(e.g. "red apple, twemoji style" / "红苹果，twemoji风格"). Built by '
        f"`cogview2 data emoji` ({manifest['builder']}).",
        "",
        "| style | package | train | held-out | no SVG for | unrenderable | blank | unmatched SVGs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, style in manifest["styles"].items():
        skipped = style["skipped"]
        lines.append(
            f"| {name} | `{style['package']}` | {style['samples']['train']} | "
            f"{style['samples']['heldout']} | {style['missing_svg']} | "
            f"{skipped['unrenderable']} | {skipped['blank']} | {skipped['unmatched']} |"
        )
    splits = manifest["splits"]
    lines += [
        "",
        f"Samples: {splits['train']['samples']} train ({splits['train']['concepts']} concepts), "
        f"{splits['heldout']['samples']} held-out ({splits['heldout']['concepts']} concepts); "
        f"{manifest['total_bytes'] / 2**20:.1f} MiB of shards.",
        "",
        _FORMAT.format(**manifest),
        _LICENCES.rstrip("\n"),
    ]
    for name, source in manifest["sources"].items():
        lines.append(
            f"| [{name}]({source['homepage']}) | {source['version']} | {source['licence']} | "
            f"{source['attribution']} |"
        )
    path = Path(out) / "README.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
