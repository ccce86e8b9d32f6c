"""Command line for pretraining (``python -m coglm_core.cli``).

Single process::

    python -m coglm_core.cli --data tokens.bin --config tiny --out run/ --steps 100

Data parallel (gloo on CPU, NCCL on GPUs; DDP, or FSDP2 with ``--fsdp``)::

    torchrun --nproc-per-node 2 -m coglm_core.cli --data tokens.bin --config tiny --out run/

Checkpoints (``run/step-<N>/``) are sharded (`torch.distributed.checkpoint`): a run resumes with
any number of processes, with or without ``--fsdp``. docs/training.md ("Scaling out") has the
multi-GPU and multi-node commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from .config import CogLMConfig
from .data import TokenDataset
from .distributed import MIXED_PRECISION_CHOICES
from .trainer import train
from .training import TrainConfig, init_distributed_from_env
from .transformer import CogLM


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", required=True, help="flat int32 token file (sequence_length per sample)"
    )
    p.add_argument(
        "--config", default="tiny", help="tiny | small | cogview2_6b | path to a config JSON"
    )
    p.add_argument("--config-override", default="{}", help="JSON object of CogLMConfig fields")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8, help="global batch size")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--variant", choices=["released", "paper"], default="released")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--dtype", default="float32", help="parameter dtype")
    p.add_argument("--autocast", default=None, help="bfloat16 | float16")
    p.add_argument(
        "--fsdp", action="store_true", help="shard with FSDP2 (one group per layer) instead of DDP"
    )
    p.add_argument(
        "--fsdp-mixed-precision",
        choices=list(MIXED_PRECISION_CHOICES),
        default="auto",
        help="FSDP2 parameter dtype: auto = the --autocast dtype on CUDA, off on CPU",
    )
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    args = _parse(argv)
    init_distributed_from_env()
    overrides = json.loads(args.config_override)
    if args.config in ("tiny", "small", "cogview2_6b"):
        model_config = getattr(CogLMConfig, args.config)(**overrides)
    else:
        model_config = dataclasses.replace(CogLMConfig.load(args.config), **overrides)
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    torch.manual_seed(args.seed)
    model = CogLM(model_config, dtype=getattr(torch, args.dtype)).to(device)
    cfg = TrainConfig(
        global_batch_size=args.batch_size,
        max_steps=args.steps,
        lr=args.lr,
        warmup_steps=args.warmup,
        seed=args.seed,
        variant=args.variant,
        checkpoint_every=args.checkpoint_every,
        autocast_dtype=args.autocast,
        fsdp=args.fsdp,
        fsdp_mixed_precision=args.fsdp_mixed_precision,
        optimizer=args.optimizer,
    )
    Path(args.out).mkdir(parents=True, exist_ok=True)
    train(
        model,
        TokenDataset(args.data, model_config.sequence_length),
        cfg,
        args.out,
        progress=not args.no_progress,
    )
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
