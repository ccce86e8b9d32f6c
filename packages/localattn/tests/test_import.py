"""Importing localattn is silent, with or without numpy (it never uses numpy)."""

from __future__ import annotations

import subprocess
import sys

BLOCK_NUMPY = """
import sys

class NoNumpy:  # a fresh interpreter in which numpy is not installed
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" or name.startswith("numpy."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoNumpy())
"""


def _import(prelude: str) -> subprocess.CompletedProcess:
    code = prelude + "\nimport localattn\n"
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_without_numpy_prints_nothing() -> None:
    done = _import(BLOCK_NUMPY)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


def test_import_prints_nothing() -> None:
    done = _import("import sys")
    assert done.returncode == 0 and done.stderr == "", done.stderr
