"""Vectorised samplers vs per-row loops, on CogView2's shapes.

    python packages/cluster-sampling/bench/bench_sampler.py                 # CPU, full shapes
    python packages/cluster-sampling/bench/bench_sampler.py --device cuda   # GPU (figures pending)
    python packages/cluster-sampling/bench/bench_sampler.py --quick         # tiny smoke run
    python packages/cluster-sampling/bench/bench_sampler.py --threads 2     # torch's default here

`--threads` defaults to 1: on an oversubscribed CPU, torch's OpenMP regions with 2 threads wait for
descheduled workers and every op gets ~10x slower; the per-row loops hardly use threads anyway.

Shapes: `[16, 20000]` (stage 1: 16 of 500 clusters, T1 = 1.15, T2 = 1.0) and `[4*3600, 20000]`
(DSR: 100 of 500 clusters, T1 = 1.0, T2 = 0.89), plus ITERSR top-k 40 on `[4*3600, 20000]`.
Baselines:
* "per-row loop (original)": the released stage-1 strategy's structure, re-expressed here: batched
  softmax and cluster masses, then a Python loop over rows (one `torch.multinomial` for the cluster,
  full-row masking to -65504), then a full-vocabulary softmax and `torch.multinomial`. It is run in
  blocks of 3600 rows to bound memory, which does not change its per-row cost.
* "per-row reference": `cluster_sampling.reference`, everything per row (the specification).
Labels are random (500 clusters over 20000 codes); logits are N(0, 3^2). Times are medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from cluster_sampling import ClusterSampler, TopKSampler
from cluster_sampling.reference import cluster_sample_reference, top_k_sample_reference

MASK_VALUE = -65504.0
BLOCK_ROWS = 3600


def original_style_loop(
    logits: torch.Tensor, labels: torch.Tensor, k: int, t1: float, t2: float, gen: torch.Generator
) -> torch.Tensor:
    """Per-row cluster sampling with the released stage-1 structure (see the module docstring)."""
    out = []
    num_clusters = int(labels.max()) + 1
    for start in range(0, logits.shape[0], BLOCK_ROWS):
        z = logits[start : start + BLOCK_ROWS].float() / t1
        probs = torch.softmax(z, dim=-1)
        masses = torch.zeros(z.shape[0], num_clusters, device=z.device)
        masses.scatter_add_(1, labels.expand_as(probs), probs)
        del probs
        top_mass, top_cluster = masses.topk(k)
        for row in range(z.shape[0]):
            pick = torch.multinomial(top_mass[row] / top_mass[row].sum(), 1, generator=gen)
            z[row, labels != top_cluster[row][pick]] = MASK_VALUE
        token_probs = torch.softmax(z / t2, dim=-1)
        out.append(torch.multinomial(token_probs, 1, generator=gen).squeeze(1))
    return torch.cat(out)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the vectorised samplers")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: robust on a shared CPU)"
    )
    parser.add_argument("--skip-reference", action="store_true", help="skip the slowest baseline")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    vocab, clusters = (2000, 50) if args.quick else (20000, 500)
    large = 64 if args.quick else 4 * 3600
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, clusters, (vocab,), generator=gen)
    labels[:clusters] = torch.arange(clusters)  # every cluster used, as in the official file
    dev_gen = torch.Generator(device=device).manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    print(
        "| case | vectorised | per-row loop (original) | per-row reference | speed-up vs loop / ref |"
    )
    print("|---|---|---|---|---|")
    cases = [
        ("stage 1 cluster", 16, 16, 1.15, 1.0),
        ("DSR cluster", large, 100 if not args.quick else 10, 1.0, 0.89),
    ]
    for name, rows, k, t1, t2 in cases:
        logits = (torch.randn(rows, vocab, generator=gen) * 3).to(device)
        sampler = ClusterSampler(labels, k, t1, t2)
        sampler(logits[:2], dev_gen)  # warm-up: builds the per-device tables
        fast = timed(partial(sampler, logits, dev_gen), args.repeats, device)
        lab = labels.to(device)
        loop = timed(partial(original_style_loop, logits, lab, k, t1, t2, dev_gen), 1, device)
        ref = float("nan")
        if not args.skip_reference:
            u = torch.rand(rows, 2, dtype=torch.float64)
            cpu_logits = logits.cpu()
            ref = timed(
                partial(cluster_sample_reference, cpu_logits, labels, k, t1, t2, u), 1, device
            )
        print(
            f"| {name} [{rows}, {vocab}] | {fast * 1e3:.1f} ms | {loop * 1e3:.0f} ms | {ref * 1e3:.0f} ms "
            f"| {loop / fast:.1f}x / {ref / fast:.1f}x |"
        )
        del logits
    logits = (torch.randn(large, vocab, generator=gen) * 3).to(device)
    topk = TopKSampler(40)
    fast = timed(partial(topk, logits, dev_gen), args.repeats, device)
    ref = float("nan")
    if not args.skip_reference:
        u = torch.rand(large, dtype=torch.float64)
        cpu_logits = logits.cpu()
        ref = timed(partial(top_k_sample_reference, cpu_logits, 40, 1.0, u), 1, device)
    print(
        f"| ITERSR top-k 40 [{large}, {vocab}] | {fast * 1e3:.1f} ms | - | {ref * 1e3:.0f} ms | - / {ref / fast:.1f}x |"
    )


if __name__ == "__main__":
    main()
