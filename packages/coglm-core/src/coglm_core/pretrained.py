"""The project's own format: ``model.safetensors`` + ``config.json`` (atomic writes)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ._atomic import atomic_path
from .config import CogLMConfig
from .sat_checkpoint import check_state_dict
from .transformer import CogLM

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def save_pretrained(model: CogLM, folder: str | os.PathLike[str]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` (each atomically).

    Returns:
        the folder.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        save_file(tensors, tmp, metadata={"format": "pt", "config": model.config.to_json()})
    model.config.save(out / CONFIG_NAME)
    return out


def from_pretrained(
    folder: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> CogLM:
    """Build a `CogLM` from a `save_pretrained` folder without a second copy of the weights.

    The module is created on the meta device and the loaded tensors are assigned to it.

    Args:
        folder: folder with ``config.json`` and ``model.safetensors``.
        device: where the tensors are loaded.
        dtype: optional cast of floating tensors.

    Raises:
        ValueError: a missing key or wrong shape (all listed).
    """
    src = Path(folder)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src / name} not found (expected a save_pretrained folder)")
    config = CogLMConfig.load(src / CONFIG_NAME)
    state = load_file(src / WEIGHTS_NAME, device=str(device))
    check_state_dict(state, config, str(src / WEIGHTS_NAME))
    unknown = sorted(set(state) - set(CogLM(config, device="meta").state_dict()))
    if unknown:
        raise ValueError(f"{src / WEIGHTS_NAME}: unexpected keys {unknown}")
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model = CogLM(config, device="meta")
    model.load_state_dict(state, assign=True)
    return model
