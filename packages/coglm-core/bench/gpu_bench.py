"""GPU benchmark for the 6B CogLM configuration with random weights (paper Table 2).

    python packages/coglm-core/bench/gpu_bench.py               # 6B, bf16, CUDA
    python packages/coglm-core/bench/gpu_bench.py --tiny --device cpu --dtype float32   # smoke run

Measures (1) one forward pass over a 4096-token causal sequence (paper: 858 ms, 5,041 MB on an
A100-40GB), with the exact SAT attention and with the SDPA fast path, and (2) cached
autoregressive decoding ms/token at batch 1 after a long prefix (paper: 225.9 s for all 4096
tokens, i.e. about 55 ms/token). Position ids run to 4095, so the position table gets 4096 rows
(the released model has 1024; the extra rows do not change the cost).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from coglm_core import CogLM, CogLMConfig, MaskedAttention


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tiny", action="store_true", help="2 layers, H=64: a smoke run")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--seq", type=int, default=4096)
    p.add_argument("--decode-steps", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    base = CogLMConfig.tiny(hidden_size=64) if args.tiny else CogLMConfig.cogview2_6b()
    config = CogLMConfig.from_dict({**base.to_dict(), "max_sequence_length": max(args.seq, 1024)})
    torch.manual_seed(0)
    model = CogLM(config, device=device, dtype=dtype).eval()
    print(
        f"{config.num_layers}L H={config.hidden_size} heads={config.num_attention_heads}, "
        f"{model.num_parameters() / 1e9:.2f}B params, {dtype}, {device}, seq {args.seq}"
    )
    ids = torch.randint(0, config.vocab_size, (1, args.seq), device=device)
    pos = torch.arange(args.seq, device=device)
    causal = torch.ones(args.seq, args.seq, dtype=torch.bool, device=device).tril()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for name, fn in (
        ("exact SAT attention", MaskedAttention(causal)),
        ("SDPA fast path", MaskedAttention(causal, use_sdpa=True)),
    ):
        ms = timed(
            lambda fn=fn: model(ids, pos, attention_fn=fn, return_logits=False),
            device,
            args.repeats,
        )
        mem = (
            torch.cuda.max_memory_allocated(device) / 2**20
            if device.type == "cuda"
            else float("nan")
        )
        print(
            f"forward {args.seq} tokens, {name}: {ms:.1f} ms (peak memory {mem:,.0f} MiB incl. weights)"
        )
    prefix = args.seq - args.decode_steps
    cache = model.new_kv_cache()
    model(ids[:, :prefix], pos[:prefix], kv_cache=cache, return_logits=False)
    _sync(device)
    t0 = time.perf_counter()
    for t in range(prefix, args.seq):
        out = model(ids[:, t : t + 1], pos[t : t + 1], kv_cache=cache, return_logits=False)
        model.logits(out.hidden_states[:, -1], (0, config.num_image_tokens)).argmax(-1)
    _sync(device)
    ms_token = (time.perf_counter() - t0) / args.decode_steps * 1000
    print(
        f"cached decode at context {prefix}..{args.seq}: {ms_token:.2f} ms/token "
        f"(x{args.seq} tokens ≈ {ms_token * args.seq / 1000:.1f} s upper bound; paper 225.9 s)"
    )


if __name__ == "__main__":
    main()
