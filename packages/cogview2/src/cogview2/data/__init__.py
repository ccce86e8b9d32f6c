"""The bilingual emoji text–image data set: fetch npm art packages, render, caption, split, shard, read.

``fetch_npm_packages`` downloads pinned packages (``npm pack``) into a cache;
``build_emoji_dataset`` builds the data set offline from extracted package roots;
``EmojiDataset`` reads it as a torch ``Dataset``; ``export_png_folder`` writes plain PNGs
and a captions file.
"""

from .annotations import EmojiInfo, load_emoji_table, normalize_code
from .builder import BuildConfig, build_emoji_dataset
from .captions import CAPTION_TEMPLATES, DEFAULT_TEMPLATE, make_caption
from .dataset import EmojiDataset, export_png_folder, load_manifest, verify_shards
from .npm import NpmNotFoundError, default_cache_dir, fetch_npm_packages
from .render import RenderError, render_svg
from .sources import DEFAULT_STYLES, STYLES, NpmPackage, StyleSource, packages_for
from .split import SPLITS, split_of

__all__ = [
    "CAPTION_TEMPLATES",
    "DEFAULT_STYLES",
    "DEFAULT_TEMPLATE",
    "SPLITS",
    "STYLES",
    "BuildConfig",
    "EmojiDataset",
    "EmojiInfo",
    "NpmNotFoundError",
    "NpmPackage",
    "RenderError",
    "StyleSource",
    "build_emoji_dataset",
    "default_cache_dir",
    "export_png_folder",
    "fetch_npm_packages",
    "load_emoji_table",
    "load_manifest",
    "make_caption",
    "normalize_code",
    "packages_for",
    "render_svg",
    "split_of",
    "verify_shards",
]
