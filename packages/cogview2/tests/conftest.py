"""Shared fixtures: one tiny random-weight pipeline per test session (built once, ~5 s), and the
shipped emoji npm-package fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from cogview2.tiny import build_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_pipe():
    return build_tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def emoji_npm() -> Path:
    """Folder of the trimmed npm-package fixtures (CLDR, emojibase and the SVG styles)."""
    return Path(__file__).parent / "fixtures" / "emoji_npm"


@pytest.fixture(scope="session")
def emoji_roots(emoji_npm: Path) -> dict[str, Path]:
    """npm package -> fixture root: the annotation packages plus twemoji and openmoji SVGs."""
    return {
        "cldr-annotations-full": emoji_npm / "cldr-annotations-full",
        "cldr-annotations-derived-full": emoji_npm / "cldr-annotations-derived-full",
        "emojibase-data": emoji_npm / "emojibase-data",
        "@twemoji/svg": emoji_npm / "twemoji-svg",
        "openmoji": emoji_npm / "openmoji",
    }
