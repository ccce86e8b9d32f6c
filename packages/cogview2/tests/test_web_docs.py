"""docs/web.md's Python examples run as written (tiny pipeline, about 15 s)."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "web.md"


def test_web_doc_examples_run(run_markdown_examples):
    assert run_markdown_examples(DOC) == 2
