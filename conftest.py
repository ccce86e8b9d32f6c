"""Repository-wide pytest hooks: `gpu` tests skip cleanly where CUDA is absent."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture
def run_markdown_examples(tmp_path, monkeypatch):
    """Execute every ```python block of a Markdown file, in order, in one namespace.

    Blocks run with the working directory set to a fresh temporary folder, so examples may
    write files. Usage: ``run_markdown_examples(Path(__file__).parents[1] / "README.md")``.
    """
    import pathlib
    import re

    def run(path: pathlib.Path) -> int:
        text = pathlib.Path(path).read_text(encoding="utf-8")
        blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
        assert blocks, f"{path} has no ```python example"
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, object] = {"__name__": "__readme__"}
        for i, block in enumerate(blocks):
            exec(compile(block, f"{path}:block{i}", "exec"), namespace)
        return len(blocks)

    return run
