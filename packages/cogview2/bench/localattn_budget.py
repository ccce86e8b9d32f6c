"""Text-to-image time with localattn's default (output-scaled) temporary budget vs a fixed 2^22.

Usage: python packages/cogview2/bench/localattn_budget.py [--weights DIR] [--rounds 2]
Generates four images for "red apple" (all stages, seed 0) per setting, interleaved, and prints
seconds per call (docs/benchmarks.md, localattn section).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from cogview2 import CogView2Pipeline
from cogview2._commands import DEFAULT_WEIGHTS
from localattn._tiling import DEFAULT_TILING
from localattn.backends import reference

FIXED = dataclasses.replace(DEFAULT_TILING, min_chunk_elements=1 << 22, chunk_elements=1 << 22)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    pipe = CogView2Pipeline.from_pretrained(args.weights)
    for _ in range(args.rounds):
        for name, tiling in (("default", DEFAULT_TILING), ("fixed 2^22", FIXED)):
            reference.DEFAULT_TILING = tiling
            t0 = time.perf_counter()
            pipe("red apple", num_images=4, generator=torch.Generator().manual_seed(0),
                 progress=False, score=False)  # fmt: skip
            print(f"{name}: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
