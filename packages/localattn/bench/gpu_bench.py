"""GPU benchmark at CogView2 shapes: triton vs compiled FlexAttention vs the reference backend.

Usage: python packages/localattn/bench/gpu_bench.py [--batch 4] [--heads 48] [--reps 20]
Patterns: 60×60 with a 9×5 window + 16 text tokens (ITERSR), and 60×60 queries on a 20×20 key grid
with a 5×5 window (DSR cross-resolution). Prints one Markdown row per (pattern, dtype, backend):
median ms of forward and forward+backward, peak memory, and the time of a pure HBM pass over the
tensors the op must touch (Q, K, V read and O written once; the backward floor also reads O, dO,
LSE and writes dQ, dK, dV) at the measured copy bandwidth of this GPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import localattn

PATTERNS = {
    "60x60 9x5 + 16 text": ((60, 60), (60, 60), (9, 5), 16),
    "60x60 -> 20x20 5x5 cross": ((60, 60), (20, 20), (5, 5), 0),
}


SMALL_PATTERNS = {  # --small: a CPU dry run of this script (TRITON_INTERPRET=1), same code paths
    "12x12 9x5 + 16 text": ((12, 12), (12, 12), (9, 5), 16),
    "12x12 -> 4x4 5x5 cross": ((12, 12), (4, 4), (5, 5), 0),
}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def bench(fn, reps: int) -> float:
    """Median milliseconds of ``fn`` over ``reps`` timed runs (CUDA events on GPU), 3 warm-ups
    (1 in the CPU dry run, where kernels run in the Triton interpreter)."""
    for _ in range(3 if DEVICE == "cuda" else 1):
        fn()
    times = []
    for _ in range(reps):
        if DEVICE == "cpu":
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def copy_bandwidth() -> float:
    """Measured device-to-device copy bandwidth in bytes/s (read + write), 1 GiB buffer."""
    x = torch.empty(1 << (29 if DEVICE == "cuda" else 24), dtype=torch.float16, device=DEVICE)
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x), 10)
    return 2 * x.numel() * x.element_size() / (ms * 1e-3)


def run_case(name, dtype, backend, args, bandwidth):
    hw, khw, ks, t = {**PATTERNS, **SMALL_PATTERNS}[name]
    b, h, d = args.batch, args.heads, 64
    mk = lambda *s: torch.randn(*s, device=DEVICE, dtype=dtype)  # noqa: E731
    q, k, v = mk(b, h, *hw, d), mk(b, h, *khw, d), mk(b, h, *khw, d)
    extra = {}
    if t:
        extra = {"extra_k": mk(b, h, t, d), "extra_v": mk(b, h, t, d),
                 "extra_bias": torch.full((h, t), 1.4, device=DEVICE)}  # fmt: skip
    leaves = [x.requires_grad_() for x in (q, k, v)]
    call = lambda: localattn.local_attention_2d(*leaves, ks, backend=backend, **extra)  # noqa: E731
    g = torch.randn_like(q)

    def fwd():
        with torch.no_grad():
            call()

    def fwd_bwd():
        torch.autograd.grad(call(), leaves, g)

    t0 = time.perf_counter()
    fwd_bwd()  # compile / autotune
    if DEVICE == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    first = time.perf_counter() - t0
    base = torch.cuda.memory_allocated() if DEVICE == "cuda" else 0
    f_ms, fb_ms = bench(fwd, args.reps), bench(fwd_bwd, args.reps)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if DEVICE == "cuda" else float("nan")
    elem = q.element_size()
    io = (q.numel() + 2 * k.numel()) * elem
    floor_f = (io + q.numel() * elem) / bandwidth * 1e3
    floor_fb = (2 * io + 3 * q.numel() * elem + 2 * k.numel() * elem) / bandwidth * 1e3
    print(f"| {name} | {str(dtype)[6:]} | {backend} | {f_ms:.3f} | {f_ms / floor_f:.1f}x "
          f"| {fb_ms:.3f} | {fb_ms / floor_fb:.1f}x | {peak:.0f} | {first:.1f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=48)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--backends", nargs="+", default=["triton", "flex", "reference"])
    parser.add_argument("--small", action="store_true", help="tiny shapes (CPU dry run)")
    args = parser.parse_args()
    bandwidth = copy_bandwidth()
    device_name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (dry run)"
    print(f"{device_name}, torch {torch.__version__}, batch {args.batch}, "
          f"{args.heads} heads, D=64; measured copy bandwidth {bandwidth / 1e12:.2f} TB/s")  # fmt: skip
    print("| pattern | dtype | backend | fwd ms | fwd / floor | fwd+bwd ms | f+b / floor "
          "| peak extra MiB | first call s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name in SMALL_PATTERNS if args.small else PATTERNS:
        for dtype in (torch.bfloat16,) if args.small else (torch.bfloat16, torch.float16):
            for backend in args.backends:
                try:
                    run_case(name, dtype, backend, args, bandwidth)
                except Exception as exc:  # report and continue: one failure must not hide the rest
                    print(f"| {name} | {str(dtype)[6:]} | {backend} | failed: "
                          f"{type(exc).__name__}: {str(exc)[:200]} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
