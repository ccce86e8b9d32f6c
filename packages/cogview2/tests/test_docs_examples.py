"""Every Python example in docs/ runs on CPU, as written, and is executed by a test."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[3] / "docs"

EXECUTED_BY = {
    "cogview2.md": "packages/cogview2/tests/test_docs_examples.py",
    "data.md": "packages/cogview2/tests/test_data_docs.py",
    "web.md": "packages/cogview2/tests/test_web_docs.py",
    "localattn.md": "packages/localattn/tests/test_readme.py",
    "localattn-backends.md": "packages/localattn/tests/test_readme.py",
}
"""Each doc with a ```python example, and the test that runs it (that test names the doc)."""


def test_every_doc_example_has_a_test() -> None:
    with_examples = {
        p.name for p in DOCS.glob("*.md") if re.search(r"^```python$", p.read_text(), re.M)
    }
    assert with_examples == set(EXECUTED_BY)
    root = DOCS.parent
    for doc, test in EXECUTED_BY.items():
        assert doc in (root / test).read_text(encoding="utf-8"), (doc, test)


def test_cogview2_doc_example_runs_on_cpu(run_markdown_examples) -> None:
    assert run_markdown_examples(DOCS / "cogview2.md") == 1
