"""The project's own format: ``model.safetensors`` + ``config.json`` (atomic writes)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ._atomic import save_safetensors
from .config import CogLMConfig
from .quantization import Int8Linear
from .sat_checkpoint import check_state_dict
from .transformer import CogLM

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def save_pretrained(model: CogLM, folder: str | os.PathLike[str]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``folder`` (each atomically).

    Returns:
        the folder.

    Raises:
        ValueError: the model holds `Int8Linear` layers (`from_pretrained` reads float weights
            only: save the float model and quantise after loading).
    """
    if any(isinstance(m, Int8Linear) for m in model.modules()):
        raise ValueError(
            "save_pretrained writes float weights only and this model has Int8Linear layers: "
            "save the float model and call quantize_linears_int8 after from_pretrained"
        )
    return save_state_dict(model.state_dict(), model.config, folder)


def save_state_dict(
    state: Mapping[str, torch.Tensor], config: CogLMConfig, folder: str | os.PathLike[str]
) -> Path:
    """The `save_pretrained` folder from a ``transformer.*`` state dict (e.g. one read from an
    official checkpoint), written one tensor at a time without building a model.

    Returns:
        the folder.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "config": config.to_json()}
    save_safetensors(state, out / WEIGHTS_NAME, metadata=meta)
    config.save(out / CONFIG_NAME)
    return out


def from_pretrained(
    folder: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> CogLM:
    """Build a `CogLM` from a `save_pretrained` folder without a second copy of the weights.

    The module is created on the meta device; tensors are read from the safetensors file one at
    a time, cast, and assigned, so the peak is the loaded model plus one stored tensor (a 6B
    model stored in fp16 loads in bf16 with ~12 GB, not the 24 GB of a whole-file read + cast).

    Args:
        folder: folder with ``config.json`` and ``model.safetensors``.
        device: where the tensors are loaded.
        dtype: optional cast of floating tensors.

    Raises:
        ValueError: a missing key or wrong shape (all listed), or a truncated or corrupt
            weights file (named).
    """
    src = Path(folder)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src / name} not found (expected a save_pretrained folder)")
    config = CogLMConfig.load(src / CONFIG_NAME)
    model = CogLM(config, device="meta")
    state = {}
    try:
        opened = safe_open(src / WEIGHTS_NAME, framework="pt", device=str(device))
    except (SafetensorError, OSError) as err:
        raise ValueError(
            f"{src / WEIGHTS_NAME} is not a complete safetensors file ({err}): it is truncated "
            "or corrupt"
        ) from err
    with opened as f:
        unknown = sorted(set(f.keys()) - set(model.state_dict()))
        if unknown:
            raise ValueError(f"{src / WEIGHTS_NAME}: unexpected keys {unknown}")
        for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            tensor = f.get_tensor(key)
            state[key] = tensor.to(dtype) if dtype and tensor.is_floating_point() else tensor
    check_state_dict(state, config, str(src / WEIGHTS_NAME))
    model.load_state_dict(state, assign=True)
    return model
