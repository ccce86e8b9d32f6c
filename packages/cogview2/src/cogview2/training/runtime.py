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
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

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
    """DDP (or FSDP2 with ``cfg.fsdp``) under torchrun; the model itself in one process.

    Args:
        model: The module to train (parameters already on their device).
        cfg: ``fsdp`` selects FSDP2 (``fully_shard`` on each of ``shard_units``, then the whole).
        shard_units: Submodules sharded individually with FSDP (the transformer layers).

    Raises:
        ValueError: FSDP asked for on CPU parameters.
    """
    if world()[1] == 1:
        return model
    device = next(model.parameters()).device
    if cfg.fsdp:
        if device.type != "cuda":
            raise ValueError("fsdp = true needs CUDA parameters; use DDP (fsdp = false) on CPU")
        from torch.distributed.fsdp import fully_shard

        for unit in shard_units:
            fully_shard(unit)
        fully_shard(model)
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


class CheckpointState:
    """A resumable checkpoint folder: ``trainable.safetensors``, ``optimizer.pt``, ``state.json``.

    Only the trainable tensors are stored (the frozen base is rebuilt from its own files).
    Written into a temporary folder and renamed (rank 0), so a kill never leaves half a file.

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
        """Gather full states (every rank must call it) and write them on rank 0."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state = get_model_state_dict(wrapped, options=opts)
        optim_state = get_optimizer_state_dict(wrapped, optimizer, options=opts)
        if is_main():
            tmp = self.folder.with_name(f".tmp-{self.folder.name}")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            tensors = {
                k: v.detach().contiguous().cpu() for k, v in model_state.items() if k in names
            }
            save_file(tensors, tmp / "trainable.safetensors")
            torch.save(optim_state, tmp / "optimizer.pt")
            (tmp / "state.json").write_text(json.dumps({"step": step}), encoding="utf-8")
            old = self.folder.with_name(f".old-{self.folder.name}")
            shutil.rmtree(old, ignore_errors=True)
            if self.folder.exists():
                os.replace(self.folder, old)
            os.replace(tmp, self.folder)
            shutil.rmtree(old, ignore_errors=True)
        barrier()

    def load(self, wrapped: nn.Module, optimizer: torch.optim.Optimizer) -> int:
        """Load weights and optimizer into ``wrapped``; returns the saved step."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, strict=False)
        model_state = load_file(self.folder / "trainable.safetensors")
        optim_state = torch.load(
            self.folder / "optimizer.pt", map_location="cpu", weights_only=True
        )
        set_model_state_dict(wrapped, model_state, options=opts)
        set_optimizer_state_dict(wrapped, optimizer, optim_state, options=opts)
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
