"""Benchmark ImageTokenizer.encode_image / decode_image (images/s) on CPU (or --device cuda).

Usage:
    python packages/icetk/bench/bench_image.py [--models small official] [--sizes 160 480]
        [--batch 4] [--reps 3] [--threads N]

Random weights (speed does not depend on them); inputs are procedural shapes images.
Prints a Markdown table; the medians of ``--reps`` timed runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from icetk import HVQVAE, ImageTokenizer, VQVAEConfig
from icetk.data import shapes_images

MODELS = {"small": VQVAEConfig.small, "official": VQVAEConfig.official, "tiny": VQVAEConfig.tiny}


def _median_seconds(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()  # returns CPU tensors, so the device work has finished when it returns
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["small", "official"], choices=sorted(MODELS)
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[160, 480])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument(
        "--device", default="cpu", help="e.g. cuda (figures include host transfers)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(
        f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, dtype {args.dtype}"
    )
    print("| model | params | size | tokens | batch | encode img/s | decode img/s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        torch.manual_seed(0)
        model = HVQVAE(MODELS[name]()).to(args.device, dtype)
        tok = ImageTokenizer(model)
        params = sum(p.numel() for p in model.parameters())
        for size in args.sizes:
            batch = args.batch if not (name == "official" and size >= 480) else 1
            images = shapes_images(batch, size)
            ids = tok.encode_image(images, compression=8)
            enc = _median_seconds(
                lambda t=tok, x=images: t.encode_image(x, compression=8), args.reps
            )
            dec = _median_seconds(lambda t=tok, i=ids: t.decode_image(i, compression=8), args.reps)
            side = size // 8
            print(
                f"| {name} | {params / 1e6:.2f}M | {size} px | {side}×{side} | {batch} "
                f"| {batch / enc:.2f} | {batch / dec:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
