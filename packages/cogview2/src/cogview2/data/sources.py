"""Where the emoji data set comes from: pinned npm packages, art styles and their licences.

Each art style is one :class:`StyleSource`: an npm package, where its SVGs lie inside the
extracted package, how a file is named (by code points or by an English-name slug) and the
licence and attribution that the data set's README must carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ANNOTATION_PACKAGES",
    "CLDR_ANNOTATIONS",
    "CLDR_ANNOTATIONS_DERIVED",
    "DEFAULT_STYLES",
    "EMOJIBASE_DATA",
    "STYLES",
    "NpmPackage",
    "StyleSource",
    "packages_for",
]


@dataclass(frozen=True)
class NpmPackage:
    """One npm package pinned to an exact version.

    Attributes:
        name: npm name, e.g. ``"@twemoji/svg"``.
        version: exact version, e.g. ``"15.0.0"``.
        licence: SPDX-like licence of what we use from the package (the artwork, the data).
        attribution: the credit line the licence asks for.
        homepage: where the work comes from.
    """

    name: str
    version: str
    licence: str
    attribution: str
    homepage: str

    @property
    def spec(self) -> str:
        """``name@version``, as ``npm pack`` takes it."""
        return f"{self.name}@{self.version}"

    @property
    def dirname(self) -> str:
        """A file-system-safe name, e.g. ``"twemoji-svg-15.0.0"`` (as ``npm pack`` names it)."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}"


@dataclass(frozen=True)
class StyleSource:
    """One art style of the data set.

    Attributes:
        name: the style's name, used in captions ("red apple, twemoji style") and file keys.
        package: the npm package holding the SVGs.
        layout: ``"files"`` (one SVG per emoji under ``path``) or ``"sprite"`` (one SVG file
            at ``path`` whose top-level ``<svg id=...>`` children are the emoji).
        path: directory (``files``) or sprite file (``sprite``), relative to the package root.
        naming: how a file or sprite id names its emoji: ``"codepoints"`` (hex code points
            joined by ``-`` or ``_``, any case, with or without U+FE0F) or ``"slug"`` (the
            lower-case CLDR English name with non-alphanumerics replaced by ``-``).
        description: one line on what the style looks like.
    """

    name: str
    package: NpmPackage
    layout: Literal["files", "sprite"]
    path: str
    naming: Literal["codepoints", "slug"]
    description: str


TWEMOJI = NpmPackage(
    "@twemoji/svg",
    "15.0.0",
    "CC-BY-4.0 (graphics); MIT (package code)",
    "Twemoji, Copyright 2019 Twitter, Inc and other contributors (jdecked/twemoji fork); "
    "graphics licensed under CC-BY 4.0: https://creativecommons.org/licenses/by/4.0/",
    "https://github.com/jdecked/twemoji",
)
OPENMOJI = NpmPackage(
    "openmoji",
    "17.0.0",
    "CC-BY-SA-4.0",
    "All emojis designed by OpenMoji – the open-source emoji and icon project. "
    "License: CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)",
    "https://openmoji.org",
)
NOTO = NpmPackage(
    "@svgmoji/noto",
    "3.2.0",
    "Apache-2.0 (Noto Emoji images; flag images are public domain); MIT (svgmoji packaging)",
    "Noto Emoji, Copyright Google Inc., Apache License 2.0 "
    "(https://www.apache.org/licenses/LICENSE-2.0); sprite packaged by svgmoji (MIT)",
    "https://github.com/googlefonts/noto-emoji",
)
FLUENT = NpmPackage(
    "fluentui-emoji",
    "1.3.0",
    "MIT",
    "Fluent Emoji, Copyright (c) Microsoft Corporation, MIT License; "
    "npm packaging Copyright (c) 2022 Mohammad Abu Mattar, MIT License",
    "https://github.com/microsoft/fluentui-emoji",
)
CLDR_ANNOTATIONS = NpmPackage(
    "cldr-annotations-full",
    "48.2.0",
    "Unicode-3.0",
    "Unicode CLDR annotations, Copyright © 1991-2025 Unicode, Inc., "
    "Unicode License v3 (https://www.unicode.org/license.txt)",
    "https://cldr.unicode.org",
)
CLDR_ANNOTATIONS_DERIVED = NpmPackage(
    "cldr-annotations-derived-full",
    "48.2.0",
    "Unicode-3.0",
    "Unicode CLDR derived annotations, Copyright © 1991-2025 Unicode, Inc., "
    "Unicode License v3 (https://www.unicode.org/license.txt)",
    "https://cldr.unicode.org",
)
EMOJIBASE_DATA = NpmPackage(
    "emojibase-data",
    "17.0.0",
    "MIT",
    "Emojibase data, Copyright (c) 2017-2019 Miles Johnson, MIT License "
    "(groups and subgroups from Unicode emoji-test.txt)",
    "https://emojibase.dev",
)
ANNOTATION_PACKAGES: tuple[NpmPackage, ...] = (
    CLDR_ANNOTATIONS,
    CLDR_ANNOTATIONS_DERIVED,
    EMOJIBASE_DATA,
)

STYLES: dict[str, StyleSource] = {
    s.name: s
    for s in (
        StyleSource("twemoji", TWEMOJI, "files", ".", "codepoints", "flat, bold Twitter emoji"),
        StyleSource(
            "openmoji", OPENMOJI, "files", "color/svg", "codepoints", "flat colour, black outlines"
        ),
        StyleSource(
            "noto", NOTO, "sprite", "sprites/all.svg", "codepoints", "Google Noto, soft shading"
        ),
        StyleSource("fluent", FLUENT, "files", "icons/flat", "slug", "Microsoft Fluent, flat"),
        StyleSource(
            "fluent-color",
            FLUENT,
            "files",
            "icons/modern",
            "slug",
            "Microsoft Fluent, gradients (slow to render)",
        ),
        StyleSource(
            "fluent-high-contrast",
            FLUENT,
            "files",
            "icons/high-contrast",
            "slug",
            "Microsoft Fluent, black line art",
        ),
        StyleSource(
            "openmoji-outline", OPENMOJI, "files", "black/svg", "codepoints", "black line art"
        ),
    )
}
"""Every art style the builder knows, by name."""

DEFAULT_STYLES: tuple[str, ...] = ("twemoji", "openmoji", "noto", "fluent")
"""Styles built when none are named: four distinct full-colour looks."""


def packages_for(styles: tuple[str, ...] | list[str]) -> tuple[NpmPackage, ...]:
    """The npm packages needed to build ``styles``: annotations first, then art, no repeats.

    Raises:
        ValueError: a style name is unknown.
    """
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise ValueError(f"unknown style(s) {unknown}; known styles are {sorted(STYLES)}")
    out: list[NpmPackage] = list(ANNOTATION_PACKAGES)
    for style in styles:
        if STYLES[style].package not in out:
            out.append(STYLES[style].package)
    return tuple(out)
