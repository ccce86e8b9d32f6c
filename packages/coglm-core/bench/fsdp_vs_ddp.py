"""FSDP2 vs DDP step time, 2 CPU processes (gloo), `CogLMConfig.small` (6 layers, H=256, 8 heads,
full icetk vocabulary 150010), released strategies on synthetic 512-token samples, AdamW, fp32.

    python packages/coglm-core/bench/fsdp_vs_ddp.py [--steps 5 --batch 4 --threads 1]

Launches ``torch.distributed.run --standalone --nproc-per-node 2`` on this file once per mode
(DDP, then FSDP2: ``fully_shard`` per layer + root, as `coglm_core.train` wraps it). Each process
builds the same model, takes its half of every global batch, and times `train_step` (forward,
backward, gradient reduction, clipping, AdamW) after a barrier, for one warm-up step and
``--steps`` timed steps. Prints one JSON line per mode (median and every step, seconds) and the
ratio FSDP2 / DDP of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.distributed as dist

from coglm_core import CogLM, CogLMConfig, TrainConfig, train_step
from coglm_core.distributed import wrap_for_training
from coglm_core.training import global_batch_indices, make_batch, make_optimizer


def synthetic_samples(config: CogLMConfig, n: int, seed: int = 0) -> list[torch.Tensor]:
    """Text + pad + 400 image tokens per sample (as cpu_bench.py)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        t = torch.randint(20100, 83000, (config.sequence_length,), generator=g)
        t[40] = config.pad_id
        t[41 : config.sequence_length - config.num_image_positions] = config.pad_id
        t[-config.num_image_positions :] = torch.randint(
            0, config.num_image_tokens, (config.num_image_positions,), generator=g
        )
        out.append(t)
    return out


def worker(mode: str, steps: int, batch: int, threads: int) -> None:
    """One process of the launch: time ``steps`` training steps after a warm-up step."""
    torch.set_num_threads(threads)
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    config = CogLMConfig.small(hidden_dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    model = CogLM(config)
    cfg = TrainConfig(global_batch_size=batch, max_steps=steps + 1, fsdp=mode == "fsdp")
    wrapped = wrap_for_training(model, list(model.transformer.layers), fsdp=cfg.fsdp)
    optimizer = make_optimizer(wrapped, cfg)
    data = synthetic_samples(config, batch * (steps + 1))
    local = batch // size
    times = []
    for step in range(steps + 1):
        indices = global_batch_indices(len(data), cfg, step)[rank * local : (rank + 1) * local]
        b = make_batch(data, indices, config, cfg, step)
        dist.barrier()
        t0 = time.perf_counter()
        train_step(wrapped, b, optimizer, config, grad_clip=cfg.grad_clip)
        times.append(time.perf_counter() - t0)
    slowest = torch.tensor(times, dtype=torch.float64)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)  # a step ends when both processes finish
    if rank == 0:
        timed = slowest[1:].tolist()
        record = {"mode": mode, "median_s": statistics.median(timed), "steps_s": timed}
        print("RESULT " + json.dumps(record), flush=True)
    dist.destroy_process_group()


def launch(mode: str, args: argparse.Namespace) -> dict[str, object]:
    """Run the 2-process launch of ``mode``; returns rank 0's record."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += [__file__, "--worker", mode, "--steps", str(args.steps), "--batch", str(args.batch)]
    cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{mode} launch failed:\n{done.stderr[-3000:]}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up")
    parser.add_argument("--batch", type=int, default=4, help="global batch (2 processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--worker", choices=["ddp", "fsdp"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.batch, args.threads)
        return
    results = {mode: launch(mode, args) for mode in ("ddp", "fsdp")}
    for record in results.values():
        print(json.dumps(record))
    ratio = results["fsdp"]["median_s"] / results["ddp"]["median_s"]  # type: ignore[operator]
    print(f"FSDP2 / DDP median step time: {ratio:.3f}")


if __name__ == "__main__":
    main()
