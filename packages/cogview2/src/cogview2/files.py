"""Checks of the files of a weights folder, shared by the pipeline folder and its models."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open

__all__ = ["check_safetensors", "require_files"]


def require_files(root: Path, names: list[str]) -> None:
    """FileNotFoundError naming every missing file of a weights folder."""
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"weights folder {root} is missing {missing}")


def check_safetensors(path: Path) -> None:
    """ValueError naming ``path`` when it is not a complete safetensors file (truncated,
    corrupt, or another format); the header and the data length are checked, no tensor is
    read."""
    try:
        with safe_open(path, framework="pt", device="cpu"):
            pass
    except (SafetensorError, OSError) as err:
        raise ValueError(
            f"{path} is not a complete safetensors file ({err}): it is truncated or corrupt; "
            "copy or write the weights folder again"
        ) from err
