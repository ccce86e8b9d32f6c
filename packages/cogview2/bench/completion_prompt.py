"""Does completion draw the prompt in the box, or the picture around it?

    python packages/cogview2/bench/completion_prompt.py --data data/emoji-twemoji \
        [--weights FOLDER] [--fill infill|compose] [--pairs 12] [--threads 2] \
        [--groups animals-nature food-drink] [--grid docs/completion.png]

For ``--pairs`` random pairs of training concepts (base emoji of ``--groups`` / ``--styles``),
the first concept's real render is completed with the second's name in a box (three boxes in
turn: centre, upper right, lower left). The prompt's reference is the ground render with the
prompt concept's real render fitted into the box (`compose_into_box`, what a perfect completion
of a one-concept picture looks like); the ground's is the ground render. Printed per pair and on
average: the share of the box's stage-1 tokens equal to each reference's tokens, and the box's
PSNR against each. A completion that follows its prompt is closer to the prompt's reference;
one that follows the context reproduces the ground picture.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cogview2.config import COMPLETION_FILLS
from cogview2.data import EmojiDataset
from cogview2.data.captions import make_caption
from cogview2.evaluation.metrics import psnr
from cogview2.loading import load_pipeline
from cogview2.stages.completion import box_grid_mask, box_pixels
from cogview2.stages.composition import compose_into_box

BOXES = ((0.3, 0.3, 0.7, 0.7), (0.1, 0.5, 0.5, 0.9), (0.45, 0.1, 0.9, 0.55))
"""(top, left, bottom, right) fractions, used in turn."""


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def measure(
    pipe, data_root: Path, pairs: int, groups: list[str], styles: list[str], fill: str | None
) -> list[dict]:
    """One record per pair: prompt-token and ground-token shares in the box, box PSNRs."""
    big = EmojiDataset(data_root, "train", pipe.image_size)
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
        ground_render = _unit(big[ground]["image"])[None]  # (1, 3, S, S)
        done = pipe.complete(
            ground_render[0],
            box,
            prompt,
            num_images=1,
            progress=False,
            output_type="pt",
            fill=fill,
            generator=torch.Generator().manual_seed(k),
        )
        cells = box_grid_mask(box, side, pipe.low_grid).flatten()
        drawn = done.low_res_tokens.flatten()
        t, left, b, r = box_pixels(box, side)
        inside = done.images.float()[..., t:b, left:r]  # type: ignore[union-attr]
        row = {
            "ground": make_caption(big.records[ground], "en", "name"),
            "prompt": prompt,
            "box": box,
            "picture": done.images[0].float().clamp(0, 1),  # type: ignore[index]  # (3, S, S)
        }
        references = {
            "prompt": compose_into_box(ground_render, _unit(big[pasted]["image"])[None], box),
            "ground": ground_render,
        }
        for name, reference in references.items():
            low = pipe.encode_pixels(reference, pipe.low_image_size).flatten()
            row[f"{name}_tokens"] = float((drawn[cells] == low[cells]).float().mean())
            row[f"{name}_psnr"] = float(psnr(reference[..., t:b, left:r], inside.clamp(0, 1))[0])
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="an emoji data set folder")
    parser.add_argument("--weights", default=None, help="weights folder (default: the demo)")
    parser.add_argument("--fill", choices=list(COMPLETION_FILLS), default=None,
                        help="completion fill (default: the weights' own)")  # fmt: skip
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--groups", nargs="*", default=["animals-nature", "food-drink"])
    parser.add_argument("--styles", nargs="*", default=["twemoji"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--grid", type=Path, default=None,
                        help="also write a PNG: each pair's ground render above its completion")  # fmt: skip
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error(f"--pairs must be >= 1, got {args.pairs}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.weights)
    rows = measure(pipe, args.data, args.pairs, args.groups, args.styles, args.fill)
    print(f"fill = {args.fill or pipe.config.completion_fill}")
    for r in rows:
        print(
            f"{r['ground']!r} + {r['prompt']!r} {r['box']}: box tokens = prompt reference's "
            f"{r['prompt_tokens']:.0%}, ground's {r['ground_tokens']:.0%}; box PSNR vs prompt "
            f"{r['prompt_psnr']:.1f} dB, vs ground {r['ground_psnr']:.1f} dB"
        )
    mean = {
        k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.endswith(("tokens", "psnr"))
    }
    closer = sum(r["prompt_psnr"] > r["ground_psnr"] for r in rows)
    print(
        f"\nmean of {len(rows)}: box tokens equal to the prompt reference's "
        f"{mean['prompt_tokens']:.1%}, to the ground's {mean['ground_tokens']:.1%}; box PSNR "
        f"vs the prompt reference {mean['prompt_psnr']:.2f} dB, vs the ground's render "
        f"{mean['ground_psnr']:.2f} dB; closer to the prompt's in {closer} of {len(rows)}"
    )
    if args.grid:
        save_grid(rows, [_unit(x) for x in grounds(pipe, args.data, rows)], args.grid)
        print(f"grid → {args.grid}")
    return 0


def grounds(pipe, data_root: Path, rows: list[dict]) -> list[torch.Tensor]:
    """The (3, S, S) ground render of each row (by its name, from the training split)."""
    big = EmojiDataset(data_root, "train", pipe.image_size)
    index = {make_caption(r, "en", "name"): i for i, r in enumerate(big.records)
             if r["code"] == r["concept"]}  # fmt: skip
    return [big[index[r["ground"]]]["image"] for r in rows]


def save_grid(rows: list[dict], ground_images: list[torch.Tensor], path: Path, side: int = 160):
    """One column per pair, the ground render above the completion, each ``side`` px."""
    from coglm_core import atomic_path

    def small(x: torch.Tensor) -> torch.Tensor:  # (3, S, S) → (3, side, side)
        return F.interpolate(x[None], size=(side, side), mode="area")[0]

    columns = [torch.cat([small(g), small(r["picture"])], dim=1)
               for g, r in zip(ground_images, rows, strict=True)]  # fmt: skip
    grid = torch.cat(columns, dim=2)  # (3, 2·side, pairs·side)
    array = (grid.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


if __name__ == "__main__":
    raise SystemExit(main())
