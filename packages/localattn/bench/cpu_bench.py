"""CPU benchmark: localattn reference vs dense SDPA with a boolean mask of the same pattern.

Usage: python packages/localattn/bench/cpu_bench.py [--grid 60 128] [--repeats 5]
       [--chunk-elements N]   (a fixed temporary budget for the reference backend instead of
                               the library's, which scales with the output: TilingConfig)
Prints a Markdown table (median ms of forward, forward+backward, peak extra memory, and the
workspace: peak extra memory minus what the call must return, i.e. the output and, with the
backward, the input gradients).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import localattn
from localattn._tiling import DEFAULT_TILING, choose_plan
from localattn.backends import reference
from localattn.types import WindowSpec


def dense_mask(h: int, w: int, kh: int, kw: int, t: int) -> torch.Tensor:
    """(H·W, H·W + T) bool mask of the centred, non-clamped window plus T global tokens."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    dy = ys[None, :] - ys[:, None] + kh // 2
    dx = xs[None, :] - xs[:, None] + kw // 2
    local = (dy >= 0) & (dy < kh) & (dx >= 0) & (dx < kw)
    return torch.cat([local, torch.ones(h * w, t, dtype=torch.bool)], 1)


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def peak_extra_mb(impl: str, mode: str, grid: int, args: argparse.Namespace) -> tuple[float, float]:
    """(peak RSS growth of one call, the same minus the bytes the call must return: the output,
    and with the backward the input gradients), measured in a fresh child process (MiB)."""
    cmd = [sys.executable, __file__, "--child", impl, mode, "--grid", str(grid),
           "--window", *map(str, args.window), "--extra", str(args.extra),
           "--heads", str(args.heads), "--head-dim", str(args.head_dim),
           *(["--chunk-elements", str(args.chunk_elements)] if args.chunk_elements else [])]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    peak, workspace = out.strip().splitlines()[-1].split()
    return float(peak), float(workspace)


def child(impl: str, mode: str, grid: int, args: argparse.Namespace) -> None:
    kh, kw = args.window
    fns, leaves = make_fns(grid, kh, kw, args.extra, args.heads, args.head_dim)
    fn = fns[impl]
    with torch.set_grad_enabled(mode == "fwdbwd"):
        out = fn()  # warm-up: lazily loaded kernels and caches are not the op's memory
        # the output gradient exists before the backward, as in training (not an expanded 1)
        dout = torch.randn_like(out)
        call = (lambda: fn().backward(dout)) if mode == "fwdbwd" else fn
        call()
    # What the call must return: its output, and the input gradients (freshly allocated below).
    required = leaves[0].numel() * 4 + (
        sum(x.numel() * 4 for x in leaves) if mode == "fwdbwd" else 0
    )
    for x in leaves:
        x.grad = None
    del out
    peak = peak_rss_growth(call, grad=mode == "fwdbwd")
    print(peak / 2**20, max(peak - required, 0) / 2**20)


def peak_rss_growth(call, grad: bool) -> int:
    """Bytes by which one ``call()`` grows the process's peak resident memory (Linux)."""
    gc.collect()
    # Give freed heap memory back to the OS, so the measured call's allocations grow the RSS
    # instead of silently reusing what the warm-up freed (glibc keeps small frees).
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # Linux: reset the VmHWM peak to current RSS
        f.write("5")
    with torch.set_grad_enabled(grad):
        call()
    return (_status_kb("VmHWM") - before) * 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def make_fns(grid: int, kh: int, kw: int, t: int, heads: int, d: int):
    """The two implementations as closures over fresh random inputs."""
    g = torch.Generator().manual_seed(0)
    shape = (1, heads, grid, grid, d)
    q, k, v = (torch.randn(shape, generator=g, requires_grad=True) for _ in range(3))
    ek, ev = (torch.randn(1, heads, t, d, generator=g, requires_grad=True) for _ in range(2))
    mask = dense_mask(grid, grid, kh, kw, t)  # built once, outside the measured calls

    def ours():
        return localattn.local_attention_2d(q, k, v, (kh, kw), extra_k=ek, extra_v=ev,
                                            backend="reference")  # fmt: skip

    def sdpa():
        kk = torch.cat([k.flatten(2, 3), ek], 2)
        vv = torch.cat([v.flatten(2, 3), ev], 2)
        return F.scaled_dot_product_attention(q.flatten(2, 3), kk, vv, attn_mask=mask)

    return {"localattn": ours, "sdpa_dense_bool": sdpa}, (q, k, v, ek, ev)


def run(grid: int, args: argparse.Namespace) -> dict[str, float]:
    kh, kw = args.window
    fns, _ = make_fns(grid, kh, kw, args.extra, args.heads, args.head_dim)
    res = {}
    for name, fn in fns.items():
        if args.memory_only:
            res[f"{name}_fwd_ms"] = res[f"{name}_fwdbwd_ms"] = float("nan")
        else:
            with torch.no_grad():
                res[f"{name}_fwd_ms"] = timed(fn, args.repeats)
            res[f"{name}_fwdbwd_ms"] = timed(lambda fn=fn: fn().sum().backward(), args.repeats)
        for mode in ("fwd", "fwdbwd"):
            peak, workspace = peak_extra_mb(name, mode, grid, args)
            res[f"{name}_{mode}_peak_mb"], res[f"{name}_{mode}_work_mb"] = peak, workspace
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", type=int, nargs="+", default=[60, 128])
    parser.add_argument("--window", type=int, nargs=2, default=[9, 5])
    parser.add_argument("--extra", type=int, default=16)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-only", action="store_true", help="skip the timings")
    parser.add_argument("--chunk-elements", type=int, default=None)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.chunk_elements:
        reference.DEFAULT_TILING = dataclasses.replace(
            DEFAULT_TILING,
            chunk_elements=args.chunk_elements,
            min_chunk_elements=args.chunk_elements,
        )
    if args.child:
        child(args.child[0], args.child[1], args.grid[0], args)
        return
    kh, kw = args.window
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, fp32, batch 1, "
          f"{args.heads} heads, D={args.head_dim}, window {kh}x{kw} + {args.extra} globals, "
          f"chunk budget {args.chunk_elements or 'default'}")  # fmt: skip
    print("| grid | tiles | ours fwd ms | SDPA fwd ms | ours fwd+bwd ms | SDPA fwd+bwd ms "
          "| ours peak MB (fwd / f+b) | SDPA peak MB (fwd / f+b) "
          "| ours workspace MB (fwd / f+b) | SDPA workspace MB (fwd / f+b) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for grid in args.grid:
        plan = choose_plan(
            (grid, grid), (grid, grid), WindowSpec(kh, kw), args.extra, args.head_dim
        )
        r = run(grid, args)
        print(
            f"| {grid}x{grid} | {plan.tile_rows}x{plan.tile_cols} "
            f"| {r['localattn_fwd_ms']:.1f} | {r['sdpa_dense_bool_fwd_ms']:.1f} "
            f"| {r['localattn_fwdbwd_ms']:.1f} | {r['sdpa_dense_bool_fwdbwd_ms']:.1f} "
            f"| {r['localattn_fwd_peak_mb']:.1f} / {r['localattn_fwdbwd_peak_mb']:.1f} "
            f"| {r['sdpa_dense_bool_fwd_peak_mb']:.1f} / {r['sdpa_dense_bool_fwdbwd_peak_mb']:.1f} "
            f"| {r['localattn_fwd_work_mb']:.1f} / {r['localattn_fwdbwd_work_mb']:.1f} "
            f"| {r['sdpa_dense_bool_fwd_work_mb']:.1f} / {r['sdpa_dense_bool_fwdbwd_work_mb']:.1f} |"
        )


if __name__ == "__main__":
    main()
