from pathlib import Path

import pytest


def test_readme_example_runs(run_markdown_examples):
    assert run_markdown_examples(Path(__file__).parents[1] / "README.md") >= 1


def test_docs_examples_run(run_markdown_examples):
    docs = Path(__file__).parents[3] / "docs"
    pages = [docs / "localattn.md", docs / "localattn-backends.md"]
    if not all(p.exists() for p in pages):
        pytest.skip("docs/ is not part of an installed-package test run")
    for page in pages:
        assert run_markdown_examples(page) >= 1
