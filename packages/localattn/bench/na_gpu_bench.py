"""GPU benchmark of neighborhood attention: triton vs compiled FlexAttention vs the reference.

Usage: python packages/localattn/bench/na_gpu_bench.py [--reps 20] [--small]
Problems: the issue's (2D 64x64 k=7 and 3D 16x32x32 k=(3,7,7), dilation 1 and 2, 4 heads,
head_dim 32, batch 1) and NATTEN's published FLUX-4K case (256x256 tokens, k=80x80, 24 heads,
head_dim 128, fp16, batch 1: 16.2 ms fused forward on an H100, NATTEN docs/profiler.md), whose
published time is printed beside ours. ``--small`` runs tiny shapes on CPU (TRITON_INTERPRET=1):
the same code paths, as CI's dry run. Prints one Markdown row per (problem, dtype, backend).
"""

from __future__ import annotations

import argparse
import time

import torch
from gpu_bench import DEVICE, bench

import localattn

PROBLEMS = {  # name: (spatial, kernel, dilation, heads, head_dim, dtypes, NATTEN's H100 fwd ms)
    "2d 64x64 k7": ((64, 64), (7, 7), (1, 1), 4, 32, ("float16", "float32"), None),
    "2d 64x64 k7 d2": ((64, 64), (7, 7), (2, 2), 4, 32, ("float16", "float32"), None),
    "3d 16x32x32 k3,7,7": ((16, 32, 32), (3, 7, 7), (1, 1, 1), 4, 32, ("float16",), None),
    "3d 16x32x32 k3,7,7 d2": ((16, 32, 32), (3, 7, 7), (2, 2, 2), 4, 32, ("float16",), None),
    "FLUX-4K 256x256 k80": ((256, 256), (80, 80), (1, 1), 24, 128, ("float16",), 16.2),
}
SMALL = {
    "2d 8x8 k3 d2": ((8, 8), (3, 3), (2, 2), 1, 16, ("float32",), None),
    "3d 3x4x4 k2,3,3": ((3, 4, 4), (2, 3, 3), (1, 1, 1), 1, 16, ("float32",), None),
}


def run(name, spec, dtype_name, backend, reps, forward_only):
    shape, kernel, dilation, heads, d, _, natten_ms = spec
    dtype = getattr(torch, dtype_name)
    q, k, v = (
        torch.randn(1, *shape, heads, d, device=DEVICE, dtype=dtype, requires_grad=True)
        for _ in range(3)
    )

    def call():
        return localattn.neighborhood_attention(q, k, v, kernel, dilation, backend=backend)

    def fwd():
        with torch.no_grad():
            call()

    g = torch.randn_like(q)

    def fwd_bwd():
        torch.autograd.grad(call(), (q, k, v), g)

    t0 = time.perf_counter()
    fwd()  # compile / autotune
    first = time.perf_counter() - t0
    f_ms = bench(fwd, reps)
    fb_ms = float("nan")
    if not forward_only:
        fwd_bwd()
        fb_ms = bench(fwd_bwd, reps)
    ref = f"{natten_ms:.1f} ({natten_ms / f_ms:.2f}x)" if natten_ms else "-"
    print(f"| {name} | {dtype_name} | {backend} | {f_ms:.3f} | {fb_ms:.3f} | {ref} "
          f"| {first:.1f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--backends", nargs="+", default=["triton", "flex", "reference"])
    parser.add_argument("--small", action="store_true", help="tiny shapes (CPU dry run)")
    args = parser.parse_args()
    device = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (dry run)"
    print(f"{device}, torch {torch.__version__}, batch 1")
    print("| problem | dtype | backend | fwd ms | fwd+bwd ms | NATTEN H100 fwd ms (NATTEN/ours) "
          "| first call s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    problems = SMALL if args.small else PROBLEMS
    for name, spec in problems.items():
        for dtype_name in spec[5]:
            for backend in args.backends:
                if backend == "reference" and name.startswith("FLUX"):
                    continue  # minutes on a GPU; not a fast path
                forward_only = name.startswith("FLUX") or (backend == "flex" and DEVICE == "cpu")
                try:
                    run(name, spec, dtype_name, backend, args.reps, forward_only)
                except Exception as exc:  # report and continue: one failure must not hide the rest
                    print(f"| {name} | {dtype_name} | {backend} | failed: "
                          f"{type(exc).__name__}: {str(exc)[:200]} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
