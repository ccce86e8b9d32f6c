"""Training: one step and a resumable loop, single process or under ``torchrun`` (DDP or FSDP2,
on CPUs with gloo or GPUs with NCCL). The data order, the strategy randomness and dropout depend
only on (seed, step, sample), so a resumed run and a run with a different number of processes see
the same global batches.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ._atomic import atomic_write_text
from .config import CogLMConfig
from .distributed import MIXED_PRECISION_CHOICES, save_sharded_checkpoint
from .losses import masked_token_losses, modality_losses
from .strategies import Variant, collate, pretraining_example, prompted_infilling_example


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping settings.

    Attributes:
        global_batch_size: samples per step over all processes (divisible by the world size).
        max_steps: optimiser steps in total (a resumed run continues to this number).
        lr: peak AdamW learning rate; linear warm-up then cosine decay to ``min_lr_ratio``·lr.
        warmup_steps: warm-up length.
        min_lr_ratio: final lr fraction.
        weight_decay: AdamW decay on matrices (not on biases / LayerNorm).
        betas: AdamW betas.
        grad_clip: max global gradient norm (0 = off).
        seed: seeds data order, strategies, dropout and the model init done by the CLI.
        variant: "released" or "paper" strategies.
        caption_ratio: probability of the caption+patches task for text-image samples.
        mask_ratio: patch ratio of the "paper" variant.
        text_dropout: probability that a text-to-image sample is trained without its text
            (the unconditional model of classifier-free guidance; 0 = the release's mix).
        caption_end: the caption task also learns the pad after the caption, its end
            (``paper`` variant; not in the release; see `image_text_understanding_example`).
        caption_only_from: dataset indices from this one on always take the caption task, with
            the loss on the caption only (no masked-patch loss on their image tokens): e.g.
            samples whose image tokens went through a decode/encode round trip teach captioning
            of re-encoded pictures but are no image targets; None = off.
        checkpoint_every: steps between checkpoints (the last step is always saved).
        keep_checkpoints: how many step folders to keep.
        autocast_dtype: "bfloat16"/"float16" autocast, or None for the parameter dtype.
        fsdp: shard with FSDP2 (``fully_shard`` per transformer layer, then the root) instead of
            DDP when distributed (CPU or GPU); one process ignores it.
        fsdp_mixed_precision: FSDP2 parameter dtype for the forward/backward (gradients are
            reduced and the sharded master weights kept in float32): ``"auto"`` = the
            ``autocast_dtype`` on CUDA and off on CPU or without autocast, ``"off"``, or
            ``"bfloat16"`` / ``"float16"`` on any device.
        optimizer: "adamw", or "sgd" (plain SGD with momentum 0.9; its update is linear in the
            gradient, which makes data-parallel equivalence checks exact).
    """

    global_batch_size: int = 8
    max_steps: int = 100
    lr: float = 3e-4
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 1234
    variant: Variant = "released"
    caption_ratio: float = 0.3
    mask_ratio: float = 0.75
    text_dropout: float = 0.0
    caption_end: bool = False
    caption_only_from: int | None = None
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    autocast_dtype: str | None = None
    fsdp: bool = False
    optimizer: Literal["adamw", "sgd"] = "adamw"
    fsdp_mixed_precision: str = "auto"

    def __post_init__(self) -> None:
        if self.fsdp_mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ValueError(
                f"fsdp_mixed_precision={self.fsdp_mixed_precision!r}; allowed: "
                f"{list(MIXED_PRECISION_CHOICES)}"
            )
        for name in ("caption_ratio", "text_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.caption_end and self.variant != "paper":
            raise ValueError("caption_end needs variant='paper' (the released layout has no end)")
        if self.caption_only_from is not None and (
            isinstance(self.caption_only_from, bool)
            or not isinstance(self.caption_only_from, int)
            or self.caption_only_from < 0
        ):
            raise ValueError(
                f"caption_only_from must be None or an index >= 0, got {self.caption_only_from!r}"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(self.max_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)


def world() -> tuple[int, int]:
    """(rank, world_size); (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed_from_env() -> bool:
    """Initialise the process group when launched by ``torchrun`` (WORLD_SIZE > 1).

    Uses NCCL when CUDA is available, else gloo. Returns True when distributed.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def sample_order(num_samples: int, seed: int, epoch: int) -> Tensor:
    """The permutation of sample indices for ``epoch``."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_samples, generator=gen)


def global_batch_indices(num_samples: int, cfg: TrainConfig, step: int) -> list[int]:
    """Dataset indices of step ``step``'s global batch (epochs reshuffled by seed)."""
    start = step * cfg.global_batch_size
    out, cache = [], {}
    for flat in range(start, start + cfg.global_batch_size):
        epoch, offset = divmod(flat, num_samples)
        if epoch not in cache:
            cache[epoch] = sample_order(num_samples, cfg.seed, epoch)
        out.append(int(cache[epoch][offset]))
    return out


def make_batch(
    dataset: Sequence[Tensor | tuple[Tensor, Tensor]],
    indices: Sequence[int],
    model_config: CogLMConfig,
    cfg: TrainConfig,
    step: int,
) -> dict[str, Any]:
    """Collated batch; each sample's strategy randomness is seeded by (seed, step, index).

    An item is a raw sample, or a ``(sample, region)`` pair: text-guided infilling of the
    region's cells (`prompted_infilling_example`). Samples at indices >= ``cfg.caption_only_from``
    take the caption task (ratio 1), with the loss on the caption only.
    """
    examples = []
    only = cfg.caption_only_from
    for i in indices:
        caption_only = only is not None and i >= only
        gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) * 1_000_033 + int(i))
        item = dataset[i]
        if isinstance(item, tuple):
            examples.append(prompted_infilling_example(*item, model_config, gen))
            continue
        example = pretraining_example(
            item,
            model_config,
            gen,
            variant=cfg.variant,
            caption_ratio=1.0 if caption_only else cfg.caption_ratio,
            mask_ratio=cfg.mask_ratio,
            text_dropout=cfg.text_dropout,
            caption_end=cfg.caption_end,
        )
        if caption_only:  # the caption's loss only: image ids are no targets here
            text = example.labels >= model_config.num_image_tokens
            example = dataclasses.replace(example, loss_mask=example.loss_mask & text)
        examples.append(example)
    return collate(examples)


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, Tensor):
            out[key] = value.to(device)
        elif hasattr(value, "in_region"):
            out[key] = type(value)(value.in_region.to(device))
        else:
            out[key] = value
    return out


def train_step(
    model: nn.Module,
    batch: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    model_config: CogLMConfig,
    *,
    grad_clip: float = 0.0,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One optimiser step on a (local) batch; returns loss statistics.

    The loss is eq. (2) normalised by the GLOBAL number of counted predictions, times the world
    size (DDP averages gradients), so the update equals the single-process update on the
    global batch.

    Returns:
        ``{"loss", "count", "<modality>_loss_sum", "<modality>_count"}`` summed over processes.
    """
    device = next(model.parameters()).device
    batch = _to(batch, device)
    _, world_size = world()
    count = batch["loss_mask"].sum().float()
    if world_size > 1:
        dist.all_reduce(count)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    counted = batch["loss_mask"].bool()
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        out = model(
            batch["input_ids"],
            batch["position_ids"],
            attention_mask=batch["attention_mask"],
            logits_mask=counted,
        )
    labels = batch["labels"][counted]  # (N,)
    per_token = masked_token_losses(out.logits[None], labels[None])[0]  # (N,), head only at N
    loss = per_token.sum() / count.to(per_token.dtype).clamp_min(1)
    (loss * world_size).backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    ones = torch.ones_like(labels, dtype=torch.bool)
    stats = modality_losses(per_token.detach()[None], labels[None], ones[None], model_config)
    flat = [float(loss.detach()) * world_size]
    for total, n in stats.values():
        flat += [total, float(n)]
    vec = torch.tensor(flat, dtype=torch.float64, device=device)
    if world_size > 1:
        dist.all_reduce(vec)
    result = {"loss": float(vec[0]) / world_size, "count": float(count)}
    for i, name in enumerate(stats):
        result[f"{name}_loss_sum"], result[f"{name}_count"] = (
            float(vec[1 + 2 * i]),
            float(vec[2 + 2 * i]),
        )
    return result


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW (or SGD) with weight decay on matrices only."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    if cfg.optimizer != "adamw":
        raise ValueError(f"optimizer={cfg.optimizer!r}; allowed: 'adamw', 'sgd'")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


# ------------------------------------------------------------------------------ checkpoints
def save_training_checkpoint(
    out_dir: Path,
    step: int,
    wrapped: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    model_config: CogLMConfig,
) -> Path:
    """Write ``step-<N>/`` and point ``out_dir/latest`` at it; every process must call it.

    The model and optimizer state go through `torch.distributed.checkpoint` (each process
    writes its shards; `coglm_core.distributed.save_sharded_checkpoint`) into
    ``.tmp-step-<N>/``; after all processes have written, rank 0 adds ``state.json`` (step and
    both configs), renames the folder to ``step-<N>/``, rewrites ``latest`` atomically and
    deletes step folders beyond ``keep_checkpoints``. A kill at any point leaves ``latest`` on a
    complete folder. With several nodes ``out_dir`` must be a shared file system.

    Returns:
        The step folder.
    """
    rank, world_size = world()
    final = out_dir / f"step-{step:08d}"
    tmp = out_dir / f".tmp-step-{step:08d}"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    if world_size > 1:
        dist.barrier()
    save_sharded_checkpoint(tmp, wrapped, optimizer)
    if world_size > 1:
        dist.barrier()
    if rank == 0:
        meta = {
            "step": step,
            "format": "torch.distributed.checkpoint",
            "world_size": world_size,
            "train_config": asdict(cfg),
            "model_config": model_config.to_dict(),
        }
        atomic_write_text(tmp / "state.json", json.dumps(meta, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write_text(out_dir / "latest", final.name + "\n")
        old = sorted(out_dir.glob("step-*"))[: -cfg.keep_checkpoints]
        for folder in old:
            shutil.rmtree(folder, ignore_errors=True)
    if world_size > 1:
        dist.barrier()
    return final


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The step folder named by ``out_dir/latest``, if any."""
    pointer = out_dir / "latest"
    if not pointer.is_file():
        return None
    folder = out_dir / pointer.read_text(encoding="utf-8").strip()
    return folder if folder.is_dir() else None
