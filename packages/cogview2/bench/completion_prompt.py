"""Does completion draw the prompt in the box, or the picture around it?

    python packages/cogview2/bench/completion_prompt.py --data data/emoji-twemoji \
        [--weights FOLDER] [--pairs 12] [--threads 2] [--groups animals-nature food-drink]

For ``--pairs`` random pairs of training concepts (base emoji of ``--groups`` / ``--styles``),
the first concept's real render is completed with the second's name in a box (three boxes in
turn: centre, upper right, lower left). Printed per pair and on average: the share of the box's
stage-1 tokens equal to the prompt concept's render tokens and to the ground picture's, and the
box's PSNR against each render. A completion that follows its prompt is closer to the prompt's
render; one that follows the context reproduces the ground picture.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch

from cogview2.data import EmojiDataset
from cogview2.data.captions import make_caption
from cogview2.evaluation.metrics import psnr
from cogview2.loading import load_pipeline
from cogview2.stages.completion import box_grid_mask

BOXES = ((0.3, 0.3, 0.7, 0.7), (0.1, 0.5, 0.5, 0.9), (0.45, 0.1, 0.9, 0.55))
"""(top, left, bottom, right) fractions, used in turn."""


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def measure(pipe, data_root: Path, pairs: int, groups: list[str], styles: list[str]) -> list[dict]:
    """One record per pair: prompt-token and ground-token shares in the box, box PSNRs."""
    big = EmojiDataset(data_root, "train", pipe.image_size)
    small = EmojiDataset(data_root, "train", pipe.low_image_size)
    records = [
        i
        for i, r in enumerate(big.records)
        if r["code"] == r["concept"]
        and (not groups or r["group"] in groups)
        and (not styles or r["style"] in styles)
    ]
    if len(records) < 2:
        raise ValueError(f"need two training concepts of groups {groups} / styles {styles}")
    rng, out = random.Random(0), []
    side = pipe.image_size
    for k in range(pairs):
        ground, pasted = rng.sample(records, 2)
        prompt = make_caption(big.records[pasted], "en", "name")
        box = BOXES[k % len(BOXES)]
        done = pipe.complete(
            _unit(big[ground]["image"]),
            box,
            prompt,
            num_images=1,
            progress=False,
            output_type="pt",
            generator=torch.Generator().manual_seed(k),
        )
        cells = box_grid_mask(box, side, pipe.low_grid).flatten()
        drawn = done.low_res_tokens.flatten()
        t, left, b, r = (int(v * side) for v in box)
        inside = done.images.float()[..., t:b, left:r]  # type: ignore[union-attr]
        row = {
            "ground": make_caption(big.records[ground], "en", "name"),
            "prompt": prompt,
            "box": box,
        }
        for name, index in (("prompt", pasted), ("ground", ground)):
            tokens = pipe.tokenizer.encode_image(
                _unit(small[index]["image"])[None], compression=pipe.config.compression
            ).flatten()
            row[f"{name}_tokens"] = float((drawn[cells] == tokens[cells]).float().mean())
            render = _unit(big[index]["image"])[None, :, t:b, left:r]
            row[f"{name}_psnr"] = float(psnr(render, inside.clamp(0, 1))[0])
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an emoji data set folder")
    parser.add_argument("--weights", default=None, help="weights folder (default: the demo)")
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--groups", nargs="*", default=["animals-nature", "food-drink"])
    parser.add_argument("--styles", nargs="*", default=["twemoji"])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs must be >= 1, got {args.pairs}")
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = measure(load_pipeline(args.weights), args.data, args.pairs, args.groups, args.styles)
    for r in rows:
        print(
            f"{r['ground']!r} + {r['prompt']!r} {r['box']}: box tokens = prompt's "
            f"{r['prompt_tokens']:.0%}, ground's {r['ground_tokens']:.0%}; box PSNR vs prompt "
            f"{r['prompt_psnr']:.1f} dB, vs ground {r['ground_psnr']:.1f} dB"
        )
    mean = {
        k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.endswith(("tokens", "psnr"))
    }
    closer = sum(r["prompt_psnr"] > r["ground_psnr"] for r in rows)
    print(
        f"\nmean of {len(rows)}: box tokens equal to the prompt concept's "
        f"{mean['prompt_tokens']:.1%}, to the ground's {mean['ground_tokens']:.1%}; box PSNR "
        f"vs the prompt's render {mean['prompt_psnr']:.2f} dB, vs the ground's "
        f"{mean['ground_psnr']:.2f} dB; closer to the prompt's in {closer} of {len(rows)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
