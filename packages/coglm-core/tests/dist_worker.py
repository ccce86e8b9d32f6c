"""Training runs for test_distributed.py: in the test process, or under ``torchrun``.

``python -m torch.distributed.run --standalone --nproc-per-node 2 dist_worker.py JOBS`` runs
each job of the JSON list ``JOBS`` in turn in one process group: ``{"out": folder, "mode":
"ddp" | "fsdp", "kill_at_step": N or null}``. With ``kill_at_step`` every process SIGKILLs
itself when step N (1-based) starts, as a preempted job dies: the last checkpoint is what
survives. A resumed job is one whose ``out`` already holds a checkpoint.

Every run trains the tiny CogLM in float64 without dropout on the same 12 samples, with AdamW
and gradient clipping (the trainer's defaults), so runs with any number of processes compute
the same updates up to the summation order of the gradient reduction.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

import torch

import coglm_core.trainer
from coglm_core import CogLM, CogLMConfig, TokenDataset, TrainConfig, train, write_token_file
from coglm_core.training import init_distributed_from_env

CFG = TrainConfig(
    global_batch_size=4, max_steps=4, lr=3e-3, warmup_steps=1, checkpoint_every=2, seed=3
)


def make_data(path: Path, n: int = 12) -> TokenDataset:
    """A token file of ``n`` tiny samples (text-only and text+image rows)."""
    c = CogLMConfig.tiny()
    if not path.is_file():
        g = torch.Generator().manual_seed(0)
        rows = []
        for i in range(n):
            t = torch.randint(70, 120, (32,), generator=g)
            if i % 3:
                t[4] = c.pad_id
                t[8:16] = c.pad_id
                t[-16:] = torch.randint(0, 64, (16,), generator=g)
            rows.append(t)
        write_token_file(path, torch.stack(rows))
    return TokenDataset(path, 32)


def make_model(seed: int = 5) -> CogLM:
    """The tiny CogLM in float64, no dropout, seeded initial weights."""
    torch.manual_seed(seed)
    config = CogLMConfig.tiny(hidden_dropout=0.0, attention_dropout=0.0)
    return CogLM(config, dtype=torch.float64)


def run(data: Path, out: Path, *, fsdp: bool = False, kill_at_step: int | None = None) -> None:
    """Train (or resume) to ``CFG.max_steps`` into ``out``."""
    if kill_at_step is not None:
        step_fn = coglm_core.trainer.train_step
        latest = out / "latest"  # a resumed run starts after its checkpoint's step
        steps = iter(range(int(latest.read_text()[5:]) if latest.is_file() else 0, 10**6))

        def dying_step(*args, **kwargs):  # type: ignore[no-untyped-def]
            if next(steps) + 1 == kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)
            return step_fn(*args, **kwargs)

        coglm_core.trainer.train_step = dying_step
    cfg = dataclasses.replace(CFG, fsdp=fsdp)
    train(make_model(), make_data(data), cfg, out, progress=False)


def main() -> None:
    torch.set_num_threads(1)
    data, jobs = Path(sys.argv[1]), json.loads(sys.argv[2])
    init_distributed_from_env()
    for job in jobs:
        run(
            data, Path(job["out"]), fsdp=job["mode"] == "fsdp", kill_at_step=job.get("kill_at_step")
        )
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
