"""GPU timings of the 6B configuration (random weights, bf16): stage 1, DSR, the 6 LoPAR passes.

    python packages/cogview2/bench/gpu_6b.py --out results.json       # on a CUDA machine
    python packages/cogview2/bench/gpu_6b.py --quick --device cpu     # smoke test of this script

Compare with the paper's Table 2 (one 4096-token sequence on an A100: LoPAR + local attention
3.41 s). Reports median seconds and peak allocated memory per stage. Needs about 28 GB of GPU
memory (CogLM 11.8 GB, shared by DSR, + DSR attention_plus 3.6 GB + ITERSR 11.8 GB) plus
activations; stage 1 at batch 16 adds a KV cache of about 16 × 48 × 2 × 417 × 3072 × 2 B = 4 GB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from coglm_core.config import CogLMConfig

sys.path.insert(0, str(Path(__file__).parent))
from _models import bench_config, build_models

from cogview2.recipes import RECIPES
from cogview2.stages import direct_super_resolution, generate_low_res, iterative_super_resolution


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(name: str, fn, device: str, repeats: int, results: list[dict]) -> object:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times, out = [], None
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    row = {
        "stage": name,
        "seconds_median": statistics.median(times),
        "seconds_all": times,
        "peak_gib": peak,
    }
    results.append(row)
    print(json.dumps(row), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny config, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stage1-batch", type=int, default=16)
    parser.add_argument("--backend", default=None, help="localattn backend (default: auto)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    dtype = torch.bfloat16
    if args.quick:
        config, args.repeats, args.stage1_batch = bench_config(1, 64, 2, 512), 1, 2
        dtype = torch.float32 if args.device == "cpu" else dtype
    else:
        config = CogLMConfig.cogview2_6b(hidden_dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    with torch.device(args.device):
        coglm, dsr, itersr, labels = build_models(config, args.device, dtype, backend=args.backend)
    text = list(range(config.num_image_tokens + 100, config.num_image_tokens + 116))
    recipe = RECIPES["mainbody"]
    g = torch.Generator(device=args.device).manual_seed(0)
    info = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "dtype": str(dtype),
        "torch": torch.__version__,
        "layers": config.num_layers,
        "hidden": config.hidden_size,
        "params_coglm": coglm.num_parameters(),
    }
    print(json.dumps(info), flush=True)
    results: list[dict] = []
    # warm-up: compiles/loads kernels once
    low = generate_low_res(coglm, text, num_images=1, recipe=recipe, labels=labels, generator=g)
    high = direct_super_resolution(dsr, text, low, recipe=recipe, labels=labels, generator=g)
    iterative_super_resolution(itersr, text, high, generator=g)
    b = args.stage1_batch
    low = measure(
        f"stage 1: 400 tokens, batch {b}",
        lambda: generate_low_res(
            coglm, text, num_images=b, recipe=recipe, labels=labels, generator=g, max_batch=b
        ),
        args.device,
        args.repeats,
        results,
    )
    for batch in (1, 4):
        high = measure(
            f"DSR: one 4096-token pass, batch {batch}",
            lambda batch=batch: direct_super_resolution(
                dsr, text, low[:batch], recipe=recipe, labels=labels, generator=g, max_batch=batch
            ),
            args.device,
            args.repeats,
            results,
        )
        measure(
            f"ITERSR: 6 LoPAR passes over 3616 tokens, batch {batch}",
            lambda batch=batch, high=high: iterative_super_resolution(
                itersr, text, high, generator=g, max_batch=batch
            ),
            args.device,
            args.repeats,
            results,
        )
    if args.out is not None:
        args.out.write_text(json.dumps({"info": info, "results": results}, indent=2))


if __name__ == "__main__":
    main()
