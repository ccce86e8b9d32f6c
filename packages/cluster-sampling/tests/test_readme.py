"""The README example runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def test_readme_example_runs(run_markdown_examples: Callable[[Path], int]) -> None:
    assert run_markdown_examples(Path(__file__).parents[1] / "README.md") == 1
