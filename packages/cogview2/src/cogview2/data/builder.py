"""Build the emoji text–image data set from extracted npm packages (offline)."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from coglm_core import atomic_write_text

from .annotations import EmojiInfo, load_emoji_table
from .captions import CAPTION_TEMPLATES, DEFAULT_TEMPLATE, make_caption
from .card import write_dataset_readme
from .render import RenderError, render_svg
from .shards import FORMAT_VERSION, ShardInfo, ShardWriter
from .sources import (
    CLDR_ANNOTATIONS,
    CLDR_ANNOTATIONS_DERIVED,
    DEFAULT_STYLES,
    EMOJIBASE_DATA,
    STYLES,
    packages_for,
)
from .split import SPLITS, split_of
from .svgs import SvgSource, discover_svgs, read_svg

__all__ = ["BuildConfig", "build_emoji_dataset"]

MANIFEST = "manifest.json"
SPLIT_RULE = "sha256(f'{seed}:{concept}') as a fraction < heldout_fraction; concept = code without skin tones"
_OUTPUT_GLOBS = ("*.tar", "*.jsonl", MANIFEST, "README.md")


@dataclass(frozen=True)
class BuildConfig:
    """What to build.

    Attributes:
        styles: art styles (keys of :data:`cogview2.data.STYLES`).
        sizes: square render sides in pixels; every sample stores one PNG per size.
        heldout_fraction: expected fraction of emoji concepts held out, in [0, 1).
        seed: split seed (see :func:`cogview2.data.split_of`).
        limit: keep only this many emoji, evenly spaced over the Unicode order (None: all).
        samples_per_shard: samples per tar shard.
        workers: render processes (1 renders in this process).
        progress: show tqdm progress bars.
    """

    styles: tuple[str, ...] = DEFAULT_STYLES
    sizes: tuple[int, ...] = (160, 480)
    heldout_fraction: float = 0.1
    seed: int = 0
    limit: int | None = None
    samples_per_shard: int = 1000
    workers: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.styles or len(set(self.styles)) != len(self.styles):
            raise ValueError(f"styles must be non-empty and distinct, got {self.styles}")
        packages_for(self.styles)  # raises ValueError on unknown names
        if not self.sizes or any(s < 8 or s > 4096 for s in self.sizes):
            raise ValueError(f"sizes must be non-empty, each in [8, 4096] px, got {self.sizes}")
        if len(set(self.sizes)) != len(self.sizes):
            raise ValueError(f"sizes must be distinct, got {self.sizes}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {self.limit}")
        if self.samples_per_shard < 1 or self.workers < 1:
            raise ValueError(
                f"samples_per_shard and workers must be >= 1, got "
                f"{self.samples_per_shard} and {self.workers}"
            )


@dataclass
class _StyleStats:
    found: int = 0
    missing_svg: int = 0
    skipped: dict[str, int] = field(
        default_factory=lambda: {"unmatched": 0, "duplicate": 0, "unrenderable": 0, "blank": 0}
    )
    samples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))


def _select(table: dict[str, EmojiInfo], limit: int | None) -> dict[str, EmojiInfo]:
    """``limit`` emoji evenly spaced over the table's order (all when ``limit`` is None)."""
    codes = list(table)
    if limit is None or limit >= len(codes):
        return table
    picks = sorted({(i * len(codes)) // limit for i in range(limit)})
    return {codes[i]: table[codes[i]] for i in picks}


def _render_job(job: tuple[bytes, tuple[int, ...]]) -> dict[int, bytes] | str:
    """Render one SVG at every size; a :class:`RenderError` becomes its reason string."""
    svg, sizes = job
    try:
        return {size: render_svg(svg, size) for size in sizes}
    except RenderError as err:
        return err.reason


def _rendered(
    jobs: list[tuple[str, str, str, SvgSource]], config: BuildConfig
) -> Iterator[dict[int, bytes] | str]:
    """Render results in job order, in this process or a small pool."""
    payloads = ((read_svg(source), config.sizes) for _, _, _, source in jobs)
    if config.workers == 1:
        yield from map(_render_job, payloads)
        return
    with multiprocessing.get_context("spawn").Pool(config.workers) as pool:
        yield from pool.imap(_render_job, payloads, chunksize=8)


def _record(info: EmojiInfo, style: str, split: str) -> dict[str, Any]:
    record: dict[str, Any] = {"key": f"{style}/{info.code}", "split": split, "style": style}
    record.update(asdict(info))
    record["keywords_en"], record["keywords_zh"] = list(info.keywords_en), list(info.keywords_zh)
    record["caption_en"] = make_caption(record, "en")
    record["caption_zh"] = make_caption(record, "zh")
    return record


def _prepare_out(out: Path, overwrite: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists() and not overwrite:
        raise ValueError(f"{out} already holds a data set ({MANIFEST}); pass overwrite=True")
    for pattern in _OUTPUT_GLOBS:
        for old in out.glob(pattern):
            old.unlink()


def _write_samples(
    jobs: list[tuple[str, str, str, SvgSource]],
    table: Mapping[str, EmojiInfo],
    out: Path,
    config: BuildConfig,
    stats: dict[str, _StyleStats],
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[ShardInfo]]]:
    """Render every job and write it to its split's shards; returns records and shards."""
    records: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    writers = {split: ShardWriter(out, split, config.samples_per_shard) for split in SPLITS}
    with ExitStack() as stack:
        for writer in writers.values():
            stack.enter_context(writer)  # on error: temporary shards are removed
        progress = tqdm(total=len(jobs), desc="rendering emoji", disable=not config.progress)
        stack.enter_context(progress)
        for (split, style, code, _), result in zip(jobs, _rendered(jobs, config), strict=True):
            progress.update()
            if isinstance(result, str):
                stats[style].skipped[result] += 1
                continue
            record = _record(table[code], style, split)
            files = {f"{size}.png": png for size, png in result.items()}
            record["shard"], spans = writers[split].add(record["key"], files)
            record["images"] = {suffix.split(".")[0]: span for suffix, span in spans.items()}
            records[split].append(record)
            stats[style].samples[split] += 1
    return records, {split: writer.shards for split, writer in writers.items()}


def _manifest(
    config: BuildConfig,
    stats: dict[str, _StyleStats],
    records: dict[str, list[dict[str, Any]]],
    shards: dict[str, list[ShardInfo]],
    emoji: dict[str, Any],
) -> dict[str, Any]:
    """The manifest of a finished build (everything but ``build_seconds``)."""
    styles = {}
    for style in config.styles:
        source = STYLES[style]
        styles[style] = {
            "package": source.package.spec,
            "path": source.path,
            "description": source.description,
            "licence": source.package.licence,
            "attribution": source.package.attribution,
            **asdict(stats[style]),
        }
    splits = {
        split: {
            "samples": len(records[split]),
            "emoji": len({r["code"] for r in records[split]}),
            "concepts": len({r["concept"] for r in records[split]}),
            "records": f"{split}.jsonl",
            "shards": [asdict(s) for s in shards[split]],
        }
        for split in SPLITS
    }
    return {
        "name": "cogview2-emoji",
        "format_version": FORMAT_VERSION,
        "builder": f"cogview2 {version('cogview2')}",
        "sizes": list(config.sizes),
        "styles": styles,
        "splits": splits,
        "total_bytes": sum(s.bytes for split in shards.values() for s in split),
        "seed": config.seed,
        "heldout_fraction": config.heldout_fraction,
        "limit": config.limit,
        "split_rule": SPLIT_RULE,
        "caption_templates": CAPTION_TEMPLATES,
        "default_caption_template": DEFAULT_TEMPLATE,
        "emoji": emoji,
        "sources": {
            p.name: {
                "version": p.version,
                "licence": p.licence,
                "attribution": p.attribution,
                "homepage": p.homepage,
            }
            for p in packages_for(config.styles)
        },
    }


def build_emoji_dataset(
    package_roots: Mapping[str, str | Path],
    out: str | Path,
    config: BuildConfig = BuildConfig(),
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Render, caption, split and shard the emoji data set into ``out``.

    Samples are ordered by split, then style, then Unicode emoji order.

    Args:
        package_roots: npm package name -> extracted package root, for the annotation
            packages and every style's package (:func:`cogview2.data.fetch_npm_packages`).
        out: output directory (created); gets shards, ``<split>.jsonl``, ``manifest.json``
            and ``README.md`` (licences and attribution).
        config: what to build.
        overwrite: replace a data set already in ``out``.

    Returns:
        The manifest (also written to ``out/manifest.json``).

    Raises:
        ValueError: a needed package root is missing from ``package_roots``, or ``out``
            already holds a data set and ``overwrite`` is False.
    """
    start = time.perf_counter()
    needed = [p.name for p in packages_for(config.styles)]
    absent = [name for name in needed if name not in package_roots]
    if absent:
        raise ValueError(f"package_roots lacks {absent}; it must map every one of {needed}")
    out = Path(out)
    _prepare_out(out, overwrite)
    roots = {name: Path(root) for name, root in package_roots.items()}
    full_table, dropped = load_emoji_table(
        roots[CLDR_ANNOTATIONS.name],
        roots[CLDR_ANNOTATIONS_DERIVED.name],
        roots[EMOJIBASE_DATA.name],
    )
    table = _select(full_table, config.limit)
    splits = {
        code: split_of(info.concept, seed=config.seed, heldout_fraction=config.heldout_fraction)
        for code, info in table.items()
    }
    stats = {style: _StyleStats() for style in config.styles}
    svgs: dict[str, dict[str, SvgSource]] = {}
    for style in config.styles:  # match against the full table: `unmatched` ignores --limit
        found, counts = discover_svgs(STYLES[style], roots[STYLES[style].package.name], full_table)
        svgs[style] = {code: src for code, src in found.items() if code in table}
        stats[style].skipped.update(counts)
        stats[style].found = len(svgs[style])
        stats[style].missing_svg = len(table) - len(svgs[style])
    jobs = [
        (split, style, code, svgs[style][code])
        for split in SPLITS
        for style in config.styles
        for code in table
        if splits[code] == split and code in svgs[style]
    ]
    records, shards = _write_samples(jobs, table, out, config, stats)
    for split in SPLITS:
        lines = (json.dumps(r, ensure_ascii=False) + "\n" for r in records[split])
        atomic_write_text(out / f"{split}.jsonl", "".join(lines))
    emoji = {"selected": len(table), "dropped_from_annotations": dropped}
    manifest = _manifest(config, stats, records, shards, emoji)
    manifest["build_seconds"] = round(time.perf_counter() - start, 1)
    write_dataset_readme(out, manifest)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    return manifest
