"""docs/data.md's Python example runs against a data set built from the test fixtures."""

from __future__ import annotations

from pathlib import Path

from cogview2.data import BuildConfig, build_emoji_dataset

DOC = Path(__file__).parents[3] / "docs" / "data.md"


def test_data_docs_example(tmp_path, run_markdown_examples, emoji_roots):
    config = BuildConfig(styles=("twemoji", "openmoji"), sizes=(160,), progress=False)
    build_emoji_dataset(emoji_roots, tmp_path / "data" / "emoji", config)
    assert run_markdown_examples(DOC) == 1
    assert (tmp_path / "out" / "emoji-png" / "captions.txt").is_file()
