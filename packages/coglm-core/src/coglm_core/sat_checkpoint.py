"""Reading and writing the official SwissArmyTransformer checkpoint layout (reference.md §2.7).

::

    <name>/latest                               "432000" or "release"
    <name>/model_config.json
    <name>/<iteration>/mp_rank_00_model_states.pt   torch.save({"module": state_dict, ...})

Loading never executes pickled code: ``torch.load(weights_only=True)`` with an explicit
allow-list for the numpy RNG state that DeepSpeed/SAT store next to the weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._atomic import atomic_path, atomic_write_text
from .config import CogLMConfig

MODEL_FILE = "mp_rank_00_model_states.pt"
NESTED_PREFIX = ("sharefs", "cogview-new")
_SAT_CONFIG_KEYS = (
    "num_layers",
    "hidden_size",
    "num_attention_heads",
    "vocab_size",
    "max_sequence_length",
    "inner_hidden_size",
    "layernorm_epsilon",
)


def _numpy_safe_globals() -> list[Any]:
    """The numpy objects inside ``np.random.get_state()`` pickles (numpy 1.x and 2.x names)."""
    from numpy._core import multiarray  # numpy >= 2

    uint32_dtype = type(np.dtype(np.uint32))
    return [
        multiarray._reconstruct,
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        uint32_dtype,
    ]


@dataclass
class SatCheckpoint:
    """A loaded official checkpoint.

    Attributes:
        state_dict: every tensor of ``['module']`` (``transformer.*`` and any ``mixins.*``,
            e.g. ``mixins.extra_position_embedding.position_embeddings.weight`` and
            ``mixins.attention_plus.*`` of the SR models). Load the ``transformer.*`` part into
            `CogLM` with `CogLM.load_state_dict(..., strict=False)` or `transformer_state_dict`.
        config: the architecture (from ``model_config.json`` and the tensor shapes).
        iteration: the content of ``latest`` ("432000" or "release").
        path: the ``mp_rank_00_model_states.pt`` file that was read.
        extra_keys: the file's other top-level keys (iteration, RNG states, ...), not loaded
            into ``state_dict``.
    """

    state_dict: dict[str, Tensor]
    config: CogLMConfig
    iteration: str
    path: Path
    extra_keys: list[str] = field(default_factory=list)

    def transformer_state_dict(self) -> dict[str, Tensor]:
        """Only the ``transformer.*`` entries (what `CogLM` holds)."""
        return {k: v for k, v in self.state_dict.items() if k.startswith("transformer.")}


def expected_shapes(config: CogLMConfig) -> dict[str, tuple[int, ...]]:
    """Every ``transformer.*`` key of a CogLM state dict with its shape (reference.md §2.7)."""
    h, v, p, f = (
        config.hidden_size,
        config.vocab_size,
        config.max_sequence_length,
        config.mlp_hidden_size,
    )
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.word_embeddings.weight": (v, h),
        "transformer.position_embeddings.weight": (p, h),
    }
    per_layer = {
        "input_layernorm.weight": (h,),
        "input_layernorm.bias": (h,),
        "attention.query_key_value.weight": (3 * h, h),
        "attention.query_key_value.bias": (3 * h,),
        "attention.dense.weight": (h, h),
        "attention.dense.bias": (h,),
        "third_layernorm.weight": (h,),
        "third_layernorm.bias": (h,),
        "post_attention_layernorm.weight": (h,),
        "post_attention_layernorm.bias": (h,),
        "mlp.dense_h_to_4h.weight": (f, h),
        "mlp.dense_h_to_4h.bias": (f,),
        "mlp.dense_4h_to_h.weight": (h, f),
        "mlp.dense_4h_to_h.bias": (h,),
        "fourth_layernorm.weight": (h,),
        "fourth_layernorm.bias": (h,),
    }
    for layer in range(config.num_layers):
        for name, shape in per_layer.items():
            shapes[f"transformer.layers.{layer}.{name}"] = shape
    shapes["transformer.final_layernorm.weight"] = (h,)
    shapes["transformer.final_layernorm.bias"] = (h,)
    return shapes


def check_state_dict(
    state_dict: Mapping[str, Tensor], config: CogLMConfig, source: str = ""
) -> None:
    """Raise one ValueError listing every missing key and every shape mismatch."""
    problems = []
    for key, shape in expected_shapes(config).items():
        if key not in state_dict:
            problems.append(f"missing {key} (expected shape {list(shape)})")
        elif tuple(state_dict[key].shape) != shape:
            problems.append(f"{key}: shape {list(state_dict[key].shape)}, expected {list(shape)}")
    if problems:
        where = f" in {source}" if source else ""
        raise ValueError(
            f"checkpoint{where} does not match the configuration ({len(problems)} problems):\n  "
            + "\n  ".join(problems)
        )


def resolve_sat_checkpoint(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """Find ``mp_rank_00_model_states.pt`` and the iteration for a user-given path.

    Accepted: the model folder (with ``latest``); a folder holding the hub's nested
    ``sharefs/cogview-new/<name>/``; a folder with exactly one ``<name>/latest`` below it; the
    iteration folder; or the ``.pt`` file itself.
    """
    p = Path(path)
    if p.is_file():
        return p, p.parent.name
    if not p.is_dir():
        raise FileNotFoundError(f"no checkpoint file or folder at {p}")
    if (p / MODEL_FILE).is_file():
        return p / MODEL_FILE, p.name
    if not (p / "latest").is_file():
        candidates = sorted(q.parent for q in p.glob("*/latest")) + sorted(
            q.parent for q in p.joinpath(*NESTED_PREFIX).glob("*/latest")
        )
        if len(candidates) != 1:
            found = ", ".join(str(c) for c in candidates) or "none"
            raise FileNotFoundError(
                f"{p} has no 'latest' file; expected one model folder below it "
                f"(<name>/latest or sharefs/cogview-new/<name>/latest), found {found}"
            )
        p = candidates[0]
    iteration = (p / "latest").read_text(encoding="utf-8").strip()
    file = p / iteration / MODEL_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{p / 'latest'} says {iteration!r} but {file} does not exist")
    return file, iteration


def _config_from_folder(
    folder: Path, module: Mapping[str, Tensor], base: CogLMConfig | None
) -> CogLMConfig:
    overrides: dict[str, Any] = {}
    json_path = folder / "model_config.json"
    if json_path.is_file():
        data = json.loads(json_path.read_text(encoding="utf-8"))
        order = data.get("layernorm_order", "sandwich")
        if order != "sandwich":
            raise ValueError(
                f"{json_path}: layernorm_order={order!r}; only 'sandwich' is supported"
            )
        overrides = {k: data[k] for k in _SAT_CONFIG_KEYS if data.get(k) is not None}
    # vocab_size / max_sequence_length are not always in the json (reference.md §11.1).
    word = module.get("transformer.word_embeddings.weight")
    pos = module.get("transformer.position_embeddings.weight")
    if word is not None and "vocab_size" not in overrides:
        overrides["vocab_size"] = word.shape[0]
    if pos is not None and "max_sequence_length" not in overrides:
        overrides["max_sequence_length"] = pos.shape[0]
    return dataclasses.replace(base or CogLMConfig.cogview2_6b(), **overrides)


def read_checkpoint_file(
    file: Path, *, extra_safe_globals: Iterable[Any] = (), mmap: bool = True
) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with the numpy allow-list and clear errors."""
    safe = [*_numpy_safe_globals(), *extra_safe_globals]
    try:
        with torch.serialization.safe_globals(safe):
            try:
                obj = torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as err:
                if not mmap or "mmap" not in str(err):
                    raise
                obj = torch.load(file, map_location="cpu", weights_only=True)  # legacy format
    except pickle.UnpicklingError as err:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(file)
        except Exception:  # the listing is only a hint
            names = []
        raise ValueError(
            f"{file}: refusing to unpickle objects outside the allow-list {names or ''} "
            "(loading never executes pickled code; if you trust the file, pass the classes as "
            f"extra_safe_globals). Detail: {str(err).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(
            f"{file}: unreadable checkpoint (truncated or not a torch.save file): {err}"
        ) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("module"), Mapping):
        raise ValueError(
            f"{file}: expected a dict with a 'module' state dict, got {type(obj).__name__}"
        )
    return obj


def load_sat_checkpoint(
    path: str | os.PathLike[str],
    config: CogLMConfig | None = None,
    *,
    dtype: torch.dtype | None = None,
    base_config: CogLMConfig | None = None,
    extra_safe_globals: Iterable[Any] = (),
) -> SatCheckpoint:
    """Load an official SAT checkpoint without executing pickled code and check every shape.

    Args:
        path: see `resolve_sat_checkpoint`.
        config: the expected architecture, used as is. Default: the architecture keys of
            ``model_config.json`` (num_layers, hidden_size, ...) merged over ``base_config``, with
            vocab/position sizes read from the tensors when the json lacks them.
        dtype: cast floating tensors to this dtype (one tensor at a time).
        base_config: supplies the fields the SAT json does not hold (the token/position layout,
            dropouts); default `CogLMConfig.cogview2_6b`.
        extra_safe_globals: more classes to allow in the pickle (for unusual extra keys).

    Returns:
        `SatCheckpoint` with the whole ``['module']`` dict (``transformer.*`` and ``mixins.*``).

    Raises:
        FileNotFoundError: no checkpoint at ``path``.
        ValueError: truncated file, disallowed pickled objects, or missing keys / wrong shapes
            (all listed in one message).
    """
    file, iteration = resolve_sat_checkpoint(path)
    obj = read_checkpoint_file(file, extra_safe_globals=extra_safe_globals)
    module = dict(obj["module"])
    folder = file.parent.parent
    config = config or _config_from_folder(folder, module, base_config)
    check_state_dict(module, config, str(file))
    if dtype is not None:
        for key, tensor in module.items():
            if tensor.is_floating_point():
                module[key] = tensor.to(dtype)
    extra = sorted(k for k in obj if k != "module")
    return SatCheckpoint(module, config, iteration, file, extra)


def write_sat_checkpoint(
    folder: str | os.PathLike[str],
    state_dict: Mapping[str, Tensor],
    config: CogLMConfig,
    *,
    iteration: int | str = "release",
    model_class: str = "BaseModel",
    include_rng_state: bool = True,
    nested_name: str | None = None,
) -> Path:
    """Write a checkpoint in the official layout (for tests, converters and round trips).

    Args:
        folder: the model folder to create (``<folder>/latest`` ...), or, with ``nested_name``,
            the root under which ``sharefs/cogview-new/<nested_name>/`` is created.
        state_dict: the ``module`` dict (``transformer.*`` and any ``mixins.*`` tensors).
        config: written to ``model_config.json`` with SAT's key names.
        iteration: content of ``latest`` and the sub-folder name.
        model_class: ``model_class`` of the json.
        include_rng_state: store python/numpy/torch RNG states as DeepSpeed does (the numpy one is
            a pickled ndarray, which the loader's allow-list must accept).
        nested_name: write the hub's nested variant.

    Returns:
        path of the written ``mp_rank_00_model_states.pt``.
    """
    root = Path(folder)
    if nested_name is not None:
        root = root.joinpath(*NESTED_PREFIX, nested_name)
    payload: dict[str, Any] = {"module": {k: v.detach().cpu() for k, v in state_dict.items()}}
    payload["iteration"] = int(iteration) if str(iteration).isdigit() else 0
    if include_rng_state:
        payload["random_rng_state"] = random.getstate()
        payload["np_rng_state"] = np.random.get_state()
        payload["torch_rng_state"] = torch.get_rng_state()
    file = root / str(iteration) / MODEL_FILE
    with atomic_path(file) as tmp:
        torch.save(payload, tmp)
    sat_json = {
        "model_class": model_class,
        "tokenizer_type": "icetk",
        "num_layers": config.num_layers,
        "hidden_size": config.hidden_size,
        "num_attention_heads": config.num_attention_heads,
        "vocab_size": config.vocab_size,
        "max_sequence_length": config.max_sequence_length,
        "layernorm_order": "sandwich",
        "model_parallel_size": 1,
    }
    if config.inner_hidden_size is not None:
        sat_json["inner_hidden_size"] = config.inner_hidden_size
    atomic_write_text(root / "model_config.json", json.dumps(sat_json, indent=2) + "\n")
    atomic_write_text(root / "latest", f"{iteration}\n")
    return file
