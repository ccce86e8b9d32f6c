"""CPU benchmark of neighborhood attention: localattn vs dense SDPA with the equivalent boolean
mask vs compiled FlexAttention (forward only: Flex has no CPU backward in torch 2.13).

Usage: python packages/localattn/bench/na_cpu_bench.py [--threads 2] [--repeats 5]
       [--cases 2d-d1 2d-d2 3d-d1 3d-d2] [--no-flex]
Prints a Markdown table: median ms of forward and forward+backward, the ratios measured in the
same run, and the peak extra memory of one call (RSS growth in a fresh child process).
Problems (the issue's): batch 1, 4 heads, head_dim 32, fp32; 2D 64x64 with k = 7 and 3D
16x32x32 with k = (3, 7, 7), dilation 1 or 2.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import torch
import torch.nn.functional as F
from cpu_bench import peak_rss_growth, timed

import localattn
from localattn._na_tiling import NASpec, choose_tile, na_tables

CASES = {
    "2d-d1": ((64, 64), (7, 7), (1, 1)),
    "2d-d2": ((64, 64), (7, 7), (2, 2)),
    "3d-d1": ((16, 32, 32), (3, 7, 7), (1, 1, 1)),
    "3d-d2": ((16, 32, 32), (3, 7, 7), (2, 2, 2)),
}
HEADS, HEAD_DIM = 4, 32


def dense_mask(spec: NASpec) -> torch.Tensor:
    """(N, N) bool neighborhood mask, from the tile tables (their exactness is tested)."""
    tab = na_tables(spec, choose_tile(spec, HEAD_DIM), torch.device("cpu"))
    allowed = tab.allowed() & tab.q_valid[:, :, None]
    mask = torch.zeros(spec.num_tokens, spec.num_tokens, dtype=torch.bool)
    t, qi, ki = torch.nonzero(allowed, as_tuple=True)
    mask[tab.q_index[t, qi], tab.k_index[t, ki]] = True
    return mask


def make_fns(case: str, with_flex: bool):
    shape, kernel, dilation = CASES[case]
    spec = NASpec(shape, kernel, dilation, (False,) * len(shape))
    g = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(1, *shape, HEADS, HEAD_DIM, generator=g, requires_grad=True) for _ in range(3)
    )
    mask = dense_mask(spec)  # built once, outside the measured calls

    def ours():
        return localattn.neighborhood_attention(q, k, v, kernel, dilation, backend="reference")

    def heads_first(x):
        return x.reshape(1, -1, HEADS, HEAD_DIM).transpose(1, 2)

    def sdpa():
        out = F.scaled_dot_product_attention(
            heads_first(q), heads_first(k), heads_first(v), attn_mask=mask
        )
        return out.transpose(1, 2).reshape(q.shape)

    fns = {"localattn": ours, "sdpa_dense_bool": sdpa}
    if with_flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        from localattn.backends.flex import neighborhood_mask_mod

        n = spec.num_tokens
        block = create_block_mask(neighborhood_mask_mod(spec), None, None, n, n, device="cpu")
        compiled = torch.compile(flex_attention, dynamic=False)

        qd, kd, vd = (heads_first(x.detach()) for x in (q, k, v))  # no CPU backward in Flex

        def flex():
            out = compiled(qd, kd, vd, block_mask=block)
            return out.transpose(1, 2).reshape(q.shape)

        fns["flex_compiled"] = flex
    return fns, (q, k, v)


def child(case: str, impl: str, mode: str) -> None:
    """Print the peak RSS growth (MiB) of one call, after a warm-up call."""
    fns, leaves = make_fns(case, impl == "flex_compiled")
    fn = fns[impl]
    with torch.set_grad_enabled(mode == "fwdbwd"):
        out = fn()
        dout = torch.randn_like(out)
        call = (lambda: fn().backward(dout)) if mode == "fwdbwd" else fn
        call()
    for x in leaves:
        x.grad = None
    del out
    print(peak_rss_growth(call, grad=mode == "fwdbwd") / 2**20)


def peak_mb(case: str, impl: str, mode: str, threads: int) -> float:
    cmd = [sys.executable, __file__, "--child", case, impl, mode, "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-flex", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        child(*args.child)
        return
    print(f"torch {torch.__version__}, {args.threads} threads, fp32, batch 1, {HEADS} heads, "
          f"head_dim {HEAD_DIM}; median of {args.repeats}")  # fmt: skip
    print("| case | tile | ours fwd ms | SDPA fwd ms | Flex fwd ms | ours f+b ms | SDPA f+b ms "
          "| fwd: SDPA/ours | fwd: Flex/ours | f+b: SDPA/ours "
          "| peak MB fwd ours / SDPA / Flex | peak MB f+b ours / SDPA |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        shape, kernel, dilation = CASES[case]
        tile = choose_tile(NASpec(shape, kernel, dilation, (False,) * len(shape)), HEAD_DIM)
        fns, _ = make_fns(case, not args.no_flex)
        r: dict[str, float] = {}
        for name, fn in fns.items():
            with torch.no_grad():
                r[f"{name}_fwd"] = timed(fn, args.repeats)
            r[f"{name}_fwd_mb"] = peak_mb(case, name, "fwd", args.threads)
            if name != "flex_compiled":
                r[f"{name}_fb"] = timed(lambda fn=fn: fn().sum().backward(), args.repeats)
                r[f"{name}_fb_mb"] = peak_mb(case, name, "fwdbwd", args.threads)
        nan = float("nan")
        flex, flex_mb = r.get("flex_compiled_fwd", nan), r.get("flex_compiled_fwd_mb", nan)
        print(
            f"| {case} {shape} k={kernel} d={dilation} | {tile} "
            f"| {r['localattn_fwd']:.1f} | {r['sdpa_dense_bool_fwd']:.1f} | {flex:.1f} "
            f"| {r['localattn_fb']:.1f} | {r['sdpa_dense_bool_fb']:.1f} "
            f"| {r['sdpa_dense_bool_fwd'] / r['localattn_fwd']:.2f}x "
            f"| {flex / r['localattn_fwd']:.2f}x "
            f"| {r['sdpa_dense_bool_fb'] / r['localattn_fb']:.2f}x "
            f"| {r['localattn_fwd_mb']:.1f} / {r['sdpa_dense_bool_fwd_mb']:.1f} / {flex_mb:.1f} "
            f"| {r['localattn_fb_mb']:.1f} / {r['sdpa_dense_bool_fb_mb']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
