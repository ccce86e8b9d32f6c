"""The resumable training loop (`train`); its command line is `coglm_core.cli`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from .distributed import is_sharded_checkpoint, load_sharded_checkpoint, wrap_for_training
from .training import (
    TrainConfig,
    global_batch_indices,
    latest_checkpoint,
    make_batch,
    make_optimizer,
    save_training_checkpoint,
    train_step,
    world,
)
from .transformer import CogLM


def _wrap(model: CogLM, cfg: TrainConfig) -> nn.Module:
    return wrap_for_training(
        model,
        list(model.transformer.layers),
        fsdp=cfg.fsdp,
        mixed_precision=cfg.fsdp_mixed_precision,
        autocast_dtype=cfg.autocast_dtype,
    )


def load_training_checkpoint(
    folder: Path, wrapped: nn.Module, optimizer: torch.optim.Optimizer
) -> int:
    """Load a step folder into ``wrapped`` and ``optimizer``; returns its step.

    Reads the sharded format (`torch.distributed.checkpoint`, any number of writing processes)
    and the full-state format of earlier versions (``model.safetensors`` + ``optimizer.pt``,
    read with ``weights_only=True``). Every process must call it.
    """
    if (folder / "model.safetensors").is_file() and not is_sharded_checkpoint(folder):
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True)
        model_state = load_file(folder / "model.safetensors")
        optim_state = torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
        set_model_state_dict(wrapped, model_state, options=opts)
        set_optimizer_state_dict(wrapped, optimizer, optim_state, options=opts)
    else:
        load_sharded_checkpoint(folder, wrapped, optimizer)
    return int(json.loads((folder / "state.json").read_text(encoding="utf-8"))["step"])


def train(
    model: CogLM,
    dataset: Sequence[Tensor | tuple[Tensor, Tensor]],
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
    resume: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` in place until ``cfg.max_steps``, resuming from ``out_dir`` if possible.

    Every process must call it with the same arguments (under ``torchrun`` the process group must
    be initialised first, see `init_distributed_from_env`). Several processes train data
    parallel: DDP, or FSDP2 with ``cfg.fsdp`` (one ``fully_shard`` group per transformer layer).
    Each process takes its contiguous share of every global batch. Checkpoints (model,
    optimizer, step) go to ``out_dir/step-<N>/`` atomically in the sharded format of
    `torch.distributed.checkpoint`, which any number of processes can resume;
    ``out_dir/log.jsonl`` gets one line per step (rank 0). Under FSDP2 ``model`` itself is
    sharded in place and stays so: gather its weights with
    `coglm_core.distributed.full_model_state` (every rank) before saving them.

    Returns:
        the per-step statistics of this call (loss, per-modality mean losses).
    """
    out = Path(out_dir)
    rank, world_size = world()
    if cfg.global_batch_size % world_size:
        raise ValueError(
            f"global_batch_size={cfg.global_batch_size} not divisible by {world_size} processes"
        )
    local = cfg.global_batch_size // world_size
    out.mkdir(parents=True, exist_ok=True)
    wrapped = _wrap(model, cfg)
    optimizer = make_optimizer(wrapped, cfg)
    start = 0
    found = latest_checkpoint(out) if resume else None
    if found is not None:
        start = load_training_checkpoint(found, wrapped, optimizer)
    amp = getattr(torch, cfg.autocast_dtype) if cfg.autocast_dtype else None
    history: list[dict[str, float]] = []
    bar = tqdm(range(start, cfg.max_steps), disable=not progress or rank != 0, desc="train")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr_at(step)
        torch.manual_seed(cfg.seed + 7919 * step + rank)  # dropout
        indices = global_batch_indices(len(dataset), cfg, step)[rank * local : (rank + 1) * local]
        batch = make_batch(dataset, indices, model.config, cfg, step)
        stats = train_step(
            wrapped, batch, optimizer, model.config, grad_clip=cfg.grad_clip, autocast_dtype=amp
        )
        record = {"step": step + 1, "loss": stats["loss"], "lr": cfg.lr_at(step)}
        for name in ("image", "english", "chinese"):
            n = stats[f"{name}_count"]
            if n:
                record[f"{name}_loss"] = stats[f"{name}_loss_sum"] / n
        history.append(record)
        if rank == 0:
            bar.set_postfix({k: round(v, 4) for k, v in record.items() if k.endswith("loss")})
            with open(out / "log.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.max_steps:
            save_training_checkpoint(out, done, wrapped, optimizer, cfg, model.config)
    return history
