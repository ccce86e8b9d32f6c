"""Process, device and checkpoint plumbing shared by the recipes (one process, torchrun, GPU)."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import Tensor, nn

from coglm_core import atomic_write_text
from coglm_core.distributed import (
    is_sharded_checkpoint,
    load_sharded_checkpoint,
    save_sharded_checkpoint,
    wrap_for_training,
)
from coglm_core.training import init_distributed_from_env, world

from .config import OptimConfig

__all__ = [
    "CheckpointState",
    "default_device",
    "global_batch_indices",
    "init_distributed",
    "is_main",
    "lr_at",
    "main_process_first",
    "world",
    "wrap_model",
]

_log = logging.getLogger(__name__)


def init_distributed() -> tuple[int, int]:
    """Join the ``torchrun`` process group when launched by it (gloo on CPU, NCCL on CUDA).

    Returns:
        (rank, world_size); (0, 1) for a plain process.
    """
    init_distributed_from_env()
    return world()


def is_main() -> bool:
    """True on rank 0 (and in a plain process)."""
    return world()[0] == 0


def barrier() -> None:
    """``dist.barrier`` when distributed, else nothing."""
    if world()[1] > 1:
        dist.barrier()


@contextmanager
def main_process_first() -> Iterator[bool]:
    """Rank 0 runs the body first; the others wait, then run it (they usually find its output).

    Yields:
        True on rank 0.
    """
    main = is_main()
    if not main:
        barrier()
    yield main
    if main:
        barrier()


def default_device(device: str | None = None) -> torch.device:
    """``device`` if given, else this process's GPU (``LOCAL_RANK``) when CUDA exists, else CPU."""
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def lr_at(cfg: OptimConfig, step: int) -> float:
    """Learning rate of 0-based step ``step``: linear warm-up, then cosine to ``min_lr_ratio``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.lr * (
        cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    )


def global_batch_indices(num_samples: int, batch_size: int, seed: int, step: int) -> list[int]:
    """Sample indices of step ``step``'s global batch: epochs are seeded permutations.

    The order depends only on (seed, step), so a resumed run sees the batches it would have
    seen without the interruption, whatever the number of processes.
    """
    if num_samples < 1:
        raise ValueError("the training set is empty")
    out: list[int] = []
    cache: dict[int, Tensor] = {}
    for flat in range(step * batch_size, (step + 1) * batch_size):
        epoch, offset = divmod(flat, num_samples)
        if epoch not in cache:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            cache[epoch] = torch.randperm(num_samples, generator=gen)
        out.append(int(cache[epoch][offset]))
    return out


def local_share(indices: list[int]) -> list[int]:
    """This process's contiguous share of a global batch (ValueError if not divisible)."""
    rank, size = world()
    if len(indices) % size:
        raise ValueError(f"global batch {len(indices)} is not divisible by {size} processes")
    n = len(indices) // size
    return indices[rank * n : (rank + 1) * n]


def wrap_model(model: nn.Module, cfg: OptimConfig, shard_units: list[nn.Module]) -> nn.Module:
    """DDP (or FSDP2 with ``cfg.fsdp``) under torchrun, on CPU or GPU; the model itself in one
    process (`coglm_core.distributed.wrap_for_training`).

    Args:
        model: The module to train (parameters already on their device).
        cfg: ``fsdp`` selects FSDP2 (``fully_shard`` on each of ``shard_units``, then the whole);
            ``fsdp_mixed_precision`` and ``autocast`` choose its parameter dtype.
        shard_units: Submodules sharded individually with FSDP2 (the transformer layers; DSR
            adds its ``attention_plus`` projections).
    """
    return wrap_for_training(
        model,
        shard_units,
        fsdp=cfg.fsdp,
        mixed_precision=cfg.fsdp_mixed_precision,
        autocast_dtype=cfg.autocast or None,
    )


class CheckpointState:
    """A resumable checkpoint folder: model and optimizer state in the sharded format of
    `torch.distributed.checkpoint`, and ``state.json`` (the step).

    Only the trainable tensors of the model are stored (the frozen base is rebuilt from its own
    files). Every process writes its shard into a temporary folder; rank 0 then adds
    ``state.json`` and renames it, so a kill never leaves half a checkpoint. Any number of
    processes, DDP or FSDP2, can resume it. A folder of earlier versions
    (``trainable.safetensors`` + ``optimizer.pt``) still loads.

    Args:
        folder: The checkpoint folder (``<stage dir>/checkpoint``).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def exists(self) -> bool:
        """True when a complete checkpoint is there."""
        return (self.folder / "state.json").is_file()

    def step(self) -> int:
        """The saved step (0 when there is none)."""
        if not self.exists():
            return 0
        return int(json.loads((self.folder / "state.json").read_text(encoding="utf-8"))["step"])

    def save(
        self, wrapped: nn.Module, optimizer: torch.optim.Optimizer, step: int, names: set[str]
    ) -> None:
        """Write the ``names`` tensors of the model and the optimizer state; every process must
        call it."""
        tmp = self.folder.with_name(f".tmp-{self.folder.name}")
        if is_main():
            shutil.rmtree(tmp, ignore_errors=True)
        barrier()
        save_sharded_checkpoint(tmp, wrapped, optimizer, keys=names)
        barrier()
        if is_main():
            state = {
                "step": step,
                "format": "torch.distributed.checkpoint",
                "world_size": world()[1],
            }
            atomic_write_text(tmp / "state.json", json.dumps(state))
            old = self.folder.with_name(f".old-{self.folder.name}")
            shutil.rmtree(old, ignore_errors=True)
            if self.folder.exists():
                os.replace(self.folder, old)
            os.replace(tmp, self.folder)
            shutil.rmtree(old, ignore_errors=True)
        barrier()

    def load(self, wrapped: nn.Module, optimizer: torch.optim.Optimizer, names: set[str]) -> int:
        """Load the saved tensors and optimizer state into ``wrapped`` and ``optimizer`` (every
        process); returns the saved step."""
        legacy = self.folder / "trainable.safetensors"
        if legacy.is_file() and not is_sharded_checkpoint(self.folder):
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            opts = StateDictOptions(full_state_dict=True, strict=False)
            optim_state = torch.load(
                self.folder / "optimizer.pt", map_location="cpu", weights_only=True
            )
            set_model_state_dict(wrapped, load_file(legacy), options=opts)
            set_optimizer_state_dict(wrapped, optimizer, optim_state, options=opts)
        else:
            load_sharded_checkpoint(self.folder, wrapped, optimizer, keys=names)
        return self.step()


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay on matrices only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95))


def append_log(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (rank 0 only)."""
    if is_main():
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


StepFn = Callable[[list[int], int], tuple[Tensor, Tensor]]
"""``step_fn(local_indices, step) -> (loss_sum, count)`` of this process's share."""
