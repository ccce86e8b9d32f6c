"""FSDP2 vs DDP step time, 2 CPU processes (gloo), `CogLMConfig.small` (6 layers, H=256, 8 heads,
full icetk vocabulary 150010), released strategies on synthetic 512-token samples, AdamW, fp32.

    python packages/coglm-core/bench/fsdp_vs_ddp.py [--steps 5 --batch 4 --threads 1]

Launches ``torch.distributed.run --standalone --nproc-per-node 2`` on this file. Each process
builds the model twice, wrapped as `coglm_core.train` wraps it: DDP, and FSDP2 (``fully_shard``
per layer + root). Every step it takes its half of the global batch and runs `train_step`
(forward, backward, gradient reduction, clipping, AdamW) on both, after a barrier each, DDP
first on odd steps and FSDP2 first on even ones, so that both see the same load on a shared
machine. One warm-up step, then ``--steps`` timed steps; a step's time is the slower process's.
Prints one JSON line per mode (median and every step, seconds) and the ratio FSDP2 / DDP of
the medians.
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

MODES = ("ddp", "fsdp")


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


def worker(steps: int, batch: int, threads: int) -> None:
    """One process of the launch: DDP and FSDP2 steps, alternating, after a warm-up step each."""
    torch.set_num_threads(threads)
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    config = CogLMConfig.small(hidden_dropout=0.0, attention_dropout=0.0)
    cfg = TrainConfig(global_batch_size=batch, max_steps=steps + 1)
    runs = {}
    for mode in MODES:
        torch.manual_seed(0)
        model = CogLM(config)
        wrapped = wrap_for_training(model, list(model.transformer.layers), fsdp=mode == "fsdp")
        runs[mode] = (wrapped, make_optimizer(wrapped, cfg))
    data = synthetic_samples(config, batch * (steps + 1))
    local = batch // size
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for step in range(steps + 1):
        indices = global_batch_indices(len(data), cfg, step)[rank * local : (rank + 1) * local]
        b = make_batch(data, indices, config, cfg, step)
        for mode in MODES if step % 2 else MODES[::-1]:  # either mode first, in turn
            wrapped, optimizer = runs[mode]
            dist.barrier()
            t0 = time.perf_counter()
            train_step(wrapped, b, optimizer, config, grad_clip=cfg.grad_clip)
            times[mode].append(time.perf_counter() - t0)
    for mode in MODES:
        slowest = torch.tensor(times[mode], dtype=torch.float64)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)  # a step ends when both processes finish
        if rank == 0:
            timed = slowest[1:].tolist()
            record = {"mode": mode, "median_s": statistics.median(timed), "steps_s": timed}
            print("RESULT " + json.dumps(record), flush=True)
    dist.destroy_process_group()


def launch(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    """Run the 2-process launch; returns rank 0's record of each mode."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += [__file__, "--worker", "--steps", str(args.steps), "--batch", str(args.batch)]
    cmd += ["--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"launch failed:\n{done.stderr[-3000:]}")
    lines = [x[len("RESULT ") :] for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    return {r["mode"]: r for r in map(json.loads, lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up")
    parser.add_argument("--batch", type=int, default=4, help="global batch (2 processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.steps, args.batch, args.threads)
        return
    results = launch(args)
    for record in results.values():
        print(json.dumps(record))
    ratio = results["fsdp"]["median_s"] / results["ddp"]["median_s"]  # type: ignore[operator]
    print(f"FSDP2 / DDP median step time: {ratio:.3f}")


if __name__ == "__main__":
    main()
