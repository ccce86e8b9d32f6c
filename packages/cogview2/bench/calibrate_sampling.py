"""Choose the SR sampling of a pipeline from what it draws (docs/deviations.md, 22).

    python packages/cogview2/bench/calibrate_sampling.py --data data/emoji-twemoji \
        [--weights FOLDER] [--concepts 16] [--seed 0] [--threads 2] [--json sweep.json]

On the same training concepts as ``cogview2 eval``'s per-stage table (base emoji of the demo
CogLM's groups and style, template ``name``), stage 1 is sampled once per concept and every
candidate of `cogview2.evaluation.calibration.default_candidates` super-resolves those tokens:
four DSR settings, then five LoPAR settings after the ``plain`` recipe's DSR. Prints a markdown
table (mean PSNR / SSIM against the real 480 px renders, concepts below their bicubic picture)
and writes every concept's numbers to ``--json``. About 5 min for 16 concepts on 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cogview2.data import EmojiDataset
from cogview2.evaluation import EvalConfig
from cogview2.evaluation.calibration import default_candidates, sampling_sweep, sweep_table
from cogview2.evaluation.run import fidelity_prompts
from cogview2.loading import load_pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an emoji data set folder")
    parser.add_argument("--weights", default=None, help="weights folder (default: the demo)")
    parser.add_argument("--concepts", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style", default="plain", help="recipe the candidates start from")
    parser.add_argument("--groups", nargs="*", default=["animals-nature", "food-drink"])
    parser.add_argument("--styles", nargs="*", default=["twemoji"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write every concept's numbers")
    args = parser.parse_args(argv)
    if args.concepts < 1:
        parser.error(f"--concepts must be >= 1, got {args.concepts}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.weights)
    cfg = EvalConfig(
        seen_groups=tuple(args.groups),
        seen_styles=tuple(args.styles),
        caption_template="name",
        fidelity_concepts=args.concepts,
        seed=args.seed,
    )
    prompts, ids = fidelity_prompts(pipe, args.data, cfg)
    data = EmojiDataset(args.data, "train", pipe.image_size)
    renders = torch.stack([data[i]["image"] for i in ids])
    start = time.perf_counter()
    scores = sampling_sweep(
        pipe, prompts, renders, default_candidates(args.style), seed=args.seed, progress=True
    )
    seconds = time.perf_counter() - start
    print(sweep_table(scores))
    print(
        f"\n{len(prompts)} concepts, seed {args.seed}, {torch.get_num_threads()} threads, "
        f"{seconds:.0f} s"
    )
    if args.json:
        record = {"prompts": prompts, "seed": args.seed, "scores": [s.to_json() for s in scores]}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
