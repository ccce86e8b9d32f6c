"""CPU benchmark: training tokens/s and cached decoding ms/token for a small CogLM.

    python packages/coglm-core/bench/cpu_bench.py [--layers 6 --hidden 256 --heads 8]

Training: released mixed strategies on synthetic 512-token samples, AdamW, batch 4, fp32 and
bf16 autocast. Decoding: stage-1 layout (16 text tokens, BOI, 400 image tokens), image logits
only, fp32, batch 1 and 8, cached versus full recomputation (a few steps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from coglm_core import (
    CogLM,
    CogLMConfig,
    TrainConfig,
    generate,
    multinomial_sampler,
    text_image_generation_mask,
    text_image_position_ids,
    text_upweighting_bias,
    train_step,
)
from coglm_core.training import make_batch, make_optimizer


def synthetic_samples(config: CogLMConfig, n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        t = torch.randint(20100, 83000, (config.sequence_length,), generator=g)
        t[40] = config.pad_id
        t[41 : config.sequence_length - config.num_image_positions] = config.pad_id
        t[-config.num_image_positions :] = torch.randint(
            0, config.num_image_tokens, (400,), generator=g
        )
        out.append(t)
    return out


def bench_training(
    config: CogLMConfig, batch: int, steps: int, autocast: torch.dtype | None
) -> float:
    torch.manual_seed(0)
    model = CogLM(config)
    cfg = TrainConfig(global_batch_size=batch)
    opt = make_optimizer(model, cfg)
    data = synthetic_samples(config, batch * (steps + 1))
    times = []
    for step in range(steps + 1):
        b = make_batch(data, range(step * batch, (step + 1) * batch), config, cfg, step)
        t0 = time.perf_counter()
        train_step(model, b, opt, config, autocast_dtype=autocast)
        times.append(time.perf_counter() - t0)
    return batch * config.sequence_length / statistics.median(times[1:])


@torch.no_grad()
def bench_decode(config: CogLMConfig, batch: int, use_cache: bool, steps: int | None) -> float:
    torch.manual_seed(0)
    model = CogLM(config).eval()
    text_len, n = 16, steps or config.num_image_positions
    tokens = torch.full((batch, text_len + 1 + n), -1)
    tokens[:, :text_len] = torch.randint(20100, 83000, (text_len,))
    tokens[:, text_len] = config.boi_id
    pos = text_image_position_ids(text_len, config, image_len=n)
    mask = text_image_generation_mask(text_len, n)
    bias = text_upweighting_bias(tokens.shape[1], text_len, 1.4)
    t0 = time.perf_counter()
    generate(
        model,
        tokens,
        pos,
        attention_mask=mask,
        attention_bias=bias,
        sampler=multinomial_sampler(),
        generator=torch.Generator().manual_seed(0),
        logits_range=(0, config.num_image_tokens),
        use_cache=use_cache,
    )
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--decode-tokens", type=int, default=400, help="image tokens to decode (<= 400)")
    p.add_argument("--skip-train", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = CogLMConfig.small(
        num_layers=args.layers,
        hidden_size=args.hidden,
        num_attention_heads=args.heads,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )
    print(
        f"config: {args.layers}L-{args.hidden}d-{args.heads}h, vocab {config.vocab_size}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    for name, amp in () if args.skip_train else (("fp32", None), ("bf16 autocast", torch.bfloat16)):
        print(
            f"train {name}: {bench_training(config, args.batch, args.steps, amp):,.0f} tokens/s "
            f"(batch {args.batch}x{config.sequence_length})"
        )
    for batch in (1, 8):
        ms = bench_decode(config, batch, True, args.decode_tokens)
        print(
            f"cached decode, batch {batch}: {ms:.2f} ms/token ({args.decode_tokens} image tokens)"
        )
    ms_cached = bench_decode(config, 1, True, 32)
    ms_full = bench_decode(config, 1, False, 32)
    print(
        f"first 32 image tokens, batch 1: cached {ms_cached:.2f} vs recompute {ms_full:.2f} ms/token"
    )


if __name__ == "__main__":
    main()
