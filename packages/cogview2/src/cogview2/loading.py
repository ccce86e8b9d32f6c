"""Where the command line and the web page get their pipeline: which weights folder, which
dtype, which memory plan. One place, so the two entry points cannot drift apart.

    from cogview2.loading import load_pipeline, resolve_weights
    pipe = load_pipeline(None, dtype="bf16", max_memory="16GB")  # the demo weights, planned
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .weights import DEMO_WEIGHTS

if TYPE_CHECKING:  # torch is imported by the functions that need it: `--help` stays fast
    import torch

    from .memory import MemoryPlan
    from .pipeline import CogView2Pipeline

__all__ = [
    "DEMO_WEIGHTS",
    "DTYPE_NAMES",
    "WEIGHTS_ENV",
    "load_pipeline",
    "parse_dtype",
    "resolve_weights",
]

WEIGHTS_ENV = "COGVIEW2_WEIGHTS"
"""Environment variable naming the default weights folder."""


DTYPE_NAMES: dict[str, str] = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
"""Accepted dtype names → torch attribute."""


def resolve_weights(weights: str | os.PathLike[str] | None) -> Path:
    """The weights folder: ``weights``, else ``$COGVIEW2_WEIGHTS``, else the demo weights.

    Raises:
        FileNotFoundError: the folder does not exist; the message says what to pass instead.
    """
    folder = Path(weights or os.environ.get(WEIGHTS_ENV) or DEMO_WEIGHTS)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no weights at {folder}: pass --weights DIR (a folder written by `cogview2 convert` "
            f"or save_pretrained), set ${WEIGHTS_ENV}, or leave both out for the demo weights "
            "shipped with the package"
        )
    return folder


def parse_dtype(name: str | None) -> torch.dtype | None:
    """``"bf16"``, ``"float16"``, ... → the torch dtype; None → None (as stored).

    Raises:
        ValueError: an unknown name (the message lists the accepted ones).
    """
    import torch

    if name is None:
        return None
    if name not in DTYPE_NAMES:
        raise ValueError(f"--dtype must be one of {sorted(DTYPE_NAMES)}, got {name!r}")
    return getattr(torch, DTYPE_NAMES[name])


def load_pipeline(
    weights: str | os.PathLike[str] | None = None,
    *,
    tiny: bool = False,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    memory_plan: MemoryPlan | None = None,
    max_memory: str | int | None = None,
    num_images: int = 1,
) -> CogView2Pipeline:
    """The pipeline of the command line and the web page.

    Args:
        weights: Folder (default: `resolve_weights`).
        tiny: The tiny random-weight pipeline instead (smoke tests; no plans).
        device: Execution device.
        dtype: A torch dtype or one of `DTYPE_NAMES` (None: as stored).
        memory_plan: Where the weights live (`cogview2.memory.MemoryPlan`); exclusive with
            ``max_memory``.
        max_memory: A budget such as ``"16GB"``: the fastest plan that fits is chosen.
        num_images: Images per call the budget must allow.

    Raises:
        FileNotFoundError: no weights folder.
        ValueError: bad dtype, plan or budget, both a plan and a budget, or a plan with ``tiny``.
    """
    from .pipeline import CogView2Pipeline

    if isinstance(dtype, str):
        dtype = parse_dtype(dtype)
    if tiny:
        from .tiny import build_tiny_pipeline

        if memory_plan is not None or max_memory is not None:
            raise ValueError("--max-memory / --offload / --int8 need a weights folder, not --tiny")
        return build_tiny_pipeline(seed=0).to(device, dtype)
    return CogView2Pipeline.from_pretrained(
        resolve_weights(weights),
        device=device,
        dtype=dtype,
        memory_plan=memory_plan,
        max_memory=max_memory,
        num_images=num_images,
    )
