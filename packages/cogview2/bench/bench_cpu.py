"""CPU timings of every stage with a small configuration, and LoPAR vs cached autoregression.

    python packages/cogview2/bench/bench_cpu.py            # the figures of docs/benchmarks.md
    python packages/cogview2/bench/bench_cpu.py --quick    # a few seconds, smoke test

Stage 1 (400 cached steps), DSR (one 4096-token pass), ITERSR with LoPAR (6 passes over 3616
tokens) and, on the same ITERSR model, token-by-token cached autoregression over the 3600 hi-res
tokens (dense causal attention with a KV cache: the paper's Table 2 "cached autoregressive" row).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from cluster_sampling import TopKSampler
from coglm_core.attention import KVCache

sys.path.insert(0, str(Path(__file__).parent))
from _models import bench_config, build_models

from cogview2.recipes import RECIPES
from cogview2.stages import direct_super_resolution, generate_low_res, iterative_super_resolution


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


@torch.no_grad()
def cached_autoregression(
    itersr, text_ids: list[int], num_tokens: int, gen: torch.Generator
) -> torch.Tensor:
    """Token-by-token generation of ``num_tokens`` hi-res tokens on the ITERSR weights."""
    base, cfg = itersr.base, itersr.config
    device = itersr.extra_positions.device
    text = torch.tensor([[0] * (cfg.text_slots - len(text_ids)) + text_ids], device=device)
    pos = torch.arange(cfg.text_slots, device=device)
    cache = KVCache(base.config.num_layers)
    emb = base.embed(text, pos)
    h = base(None, None, inputs_embeds=emb, kv_cache=cache, return_logits=False).hidden_states[
        :, -1
    ]
    sampler = TopKSampler(40)
    out = []
    boi = base.transformer.word_embeddings.weight[base.config.boi_id]
    prev = boi
    for k in range(num_tokens):
        e = (prev + itersr.extra_positions[k])[None, None]
        h = base(None, None, inputs_embeds=e, kv_cache=cache, return_logits=False).hidden_states[
            :, -1
        ]
        tok = sampler(base.logits(h, (0, base.config.num_image_tokens)), gen)
        out.append(tok)
        prev = base.transformer.word_embeddings.weight[tok[0]]
    return torch.stack(out, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--codes", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ar-tokens",
        type=int,
        default=400,
        help="hi-res tokens of the AR baseline (time scaled to 3600: a lower bound)",
    )
    args = parser.parse_args()
    if args.quick:
        (
            args.layers,
            args.hidden,
            args.heads,
            args.codes,
            args.batch,
            args.repeats,
            args.ar_tokens,
        ) = 1, 32, 2, 256, 1, 1, 50
    torch.manual_seed(0)
    config = bench_config(args.layers, args.hidden, args.heads, args.codes)
    coglm, dsr, itersr, labels = build_models(config, "cpu", torch.float32)
    text = list(range(config.num_image_tokens + 100, config.num_image_tokens + 116))  # 16 tokens
    recipe, g = RECIPES["mainbody"], torch.Generator().manual_seed(0)
    print(
        f"config: {args.layers} layers, hidden {args.hidden}, {args.heads} heads, {args.codes} image ids, "
        f"batch {args.batch}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    # warm-up (first localattn call imports torch._dynamo)
    low = generate_low_res(coglm, text, num_images=1, recipe=recipe, labels=labels, generator=g)
    high = direct_super_resolution(dsr, text, low, recipe=recipe, labels=labels, generator=g)
    iterative_super_resolution(itersr, text, high, generator=g)

    rows = []
    t1, low = timed(
        lambda: generate_low_res(
            coglm,
            text,
            num_images=args.batch,
            recipe=recipe,
            labels=labels,
            generator=g,
            max_batch=args.batch,
        ),
        args.repeats,
    )
    rows.append(("stage 1: 400 tokens, cached (1 + 399 passes)", args.batch, t1))
    t2, high = timed(
        lambda: direct_super_resolution(
            dsr, text, low, recipe=recipe, labels=labels, generator=g, max_batch=args.batch
        ),
        args.repeats,
    )
    rows.append(("DSR: one pass, 4096 tokens", args.batch, t2))
    t3, _ = timed(
        lambda: iterative_super_resolution(itersr, text, high, generator=g, max_batch=args.batch),
        args.repeats,
    )
    rows.append(("ITERSR LoPAR: 6 passes, 3616 tokens", args.batch, t3))
    t4, _ = timed(
        lambda: iterative_super_resolution(itersr, text, high[:1], generator=g), args.repeats
    )
    rows.append(("ITERSR LoPAR: 6 passes, 3616 tokens", 1, t4))
    t5, _ = timed(lambda: cached_autoregression(itersr, text, args.ar_tokens, g), 1)
    per_image_ar = t5 * 3600 / args.ar_tokens
    rows.append(
        (
            f"cached AR on the ITERSR model, {args.ar_tokens} tokens (scaled to 3600)",
            1,
            per_image_ar,
        )
    )
    print("| stage | batch | seconds |\n|---|---|---|")
    for name, b, s in rows:
        print(f"| {name} | {b} | {s:.3f} |")
    print(
        f"LoPAR (1 DSR + 6 ITERSR passes, batch 1) vs cached AR for 3600 tokens: "
        f"{per_image_ar / (t4 + t2 / args.batch):.1f}x faster"
    )


if __name__ == "__main__":
    main()
