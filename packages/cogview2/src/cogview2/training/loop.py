"""A resumable data-parallel training loop for the super-resolution recipes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from .config import OptimConfig
from .runtime import (
    CheckpointState,
    StepFn,
    append_log,
    global_batch_indices,
    is_main,
    local_share,
    lr_at,
    make_optimizer,
    world,
)

__all__ = ["run_loop"]

_log = logging.getLogger(__name__)


def run_loop(
    wrapped: nn.Module,
    num_samples: int,
    step_fn: StepFn,
    cfg: OptimConfig,
    out_dir: Path,
    *,
    desc: str,
    progress: bool = True,
    stop_after: int | None = None,
) -> list[dict[str, float]]:
    """Train until ``cfg.steps``, resuming from ``out_dir/checkpoint`` when it is there.

    The global batch of step ``s`` is ``global_batch_indices(num_samples, batch, seed, s)``;
    each process takes its contiguous share and returns ``(loss_sum, count)`` from ``step_fn``.
    The loss is normalised by the count summed over processes, times the world size (DDP
    averages gradients), so the update equals the one-process update on the global batch.

    Args:
        wrapped: The module as `wrap_model` returned it (plain, DDP or FSDP2); its trainable
            parameters are trained.
        num_samples: Training set size.
        step_fn: Computes this process's summed loss and its number of terms (calls ``wrapped``).
        cfg: Optimisation settings.
        out_dir: Stage folder (``checkpoint/`` and ``log.jsonl`` go there).
        desc: Progress-bar label.
        progress: Show a tqdm bar (rank 0).
        stop_after: Stop after this many steps of this call (tests of resumption); None: run on.

    Returns:
        One record per step run by this call: step, loss, lr.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    rank, world_size = world()
    names = {n for n, p in _unwrap(wrapped).named_parameters() if p.requires_grad}
    optimizer = make_optimizer(wrapped, cfg)
    ckpt = CheckpointState(out_dir / "checkpoint")
    start = ckpt.load(wrapped, optimizer, names) if ckpt.exists() else 0
    if start:
        _log.info("%s: resumed at step %d from %s", desc, start, ckpt.folder)
    device = next(_unwrap(wrapped).parameters()).device
    amp = getattr(torch, cfg.autocast) if cfg.autocast else None
    history: list[dict[str, float]] = []
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    bar = tqdm(
        range(start, end),
        disable=not progress or rank != 0,
        desc=desc,
        initial=start,
        total=cfg.steps,
    )
    tick = time.perf_counter()
    for step in bar:
        lr = lr_at(cfg, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(cfg.seed + 7919 * step + rank)  # dropout
        indices = local_share(global_batch_indices(num_samples, cfg.batch_size, cfg.seed, step))
        wrapped.train()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss_sum, count = step_fn(indices, step)
        total = count.detach().float().clone()
        if world_size > 1:
            dist.all_reduce(total)
        (loss_sum.float() / total.clamp_min(1) * world_size).backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in wrapped.parameters() if p.requires_grad], cfg.grad_clip
            )
        optimizer.step()
        stat = torch.stack([loss_sum.detach().float(), count.detach().float()]).to(device)
        if world_size > 1:
            dist.all_reduce(stat)
        record = {"step": step + 1, "loss": float(stat[0] / stat[1].clamp_min(1)), "lr": lr}
        history.append(record)
        if rank == 0:
            bar.set_postfix(loss=f"{record['loss']:.4f}")
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            record["seconds"] = round(time.perf_counter() - tick, 3)
            append_log(out_dir / "log.jsonl", record)
            _log.info("%s %s", desc, record)
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            ckpt.save(wrapped, optimizer, step + 1, names)
    bar.close()
    if is_main() and history:
        _log.info("%s: step %d, loss %.4f", desc, history[-1]["step"], history[-1]["loss"])
    return history


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
