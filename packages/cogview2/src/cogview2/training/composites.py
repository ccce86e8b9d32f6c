"""Composite samples for text-guided infilling (``[coglm] prompted_infilling``).

``cogview2 complete "pizza" --image apple.png --box …`` should draw a pizza in the box. The
release's CogLM learns infilling only in the caption task, where the masked patches come before
the caption and never see it, so the demo CogLM filled a box from the picture around it (red
apple inside the apple) even under classifier-free guidance. Each composite here is one
training concept's picture with another concept in a random box: the box's cells are the
targets of `coglm_core.prompted_infilling_example`, and the caption is the other concept's, so
the model learns to draw what the prompt names inside the box and to keep the rest as context.
The cells outside the box are the first picture's own tokens (a real picture's, as
``complete`` encodes its input). Inside the box (``[coglm] infill_composite``):

* ``"window"``: the other concept's own cells at the same places, as if seen through the box;
  a model that memorised its concepts learns it in a few hundred steps (the demo weights);
* ``"shrink"``: the other picture shrunk into the box and encoded in place (the VQ-VAE sees
  the box edge as in a drawn picture). Drawing a concept at a new size and place is
  generalisation: 800 steps × 16 on 1,044 composites taught the 2.9 M demo CogLM only to fill
  the box with background (docs/training.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from coglm_core import atomic_write_text
from coglm_core.data import TokenDataset, write_token_file
from icetk import IceTokenizer

from .config import TrainingConfig
from .tokenize_data import cfg_low

COMPOSITE_FILE = "coglm-prompted-infilling.bin"
"""The composite samples, beside ``coglm-train.bin`` in the tokenize folder."""
REGION_FILE = "coglm-prompted-infilling-regions.bin"
"""Their box cells: one row of ``grid²`` 0/1 values per sample."""
COMPOSITE_MODES = ("window", "shrink")
"""What a composite shows inside its box (module doc)."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellBox:
    """A box of stage-1 cells (the pipeline's `Box` is in fractions of the side): rows
    ``[top, top + height)``, columns ``[left, left + width)``."""

    top: int
    left: int
    height: int
    width: int

    def cells(self, grid: int) -> Tensor:
        """(grid²,) bool: the box's cells in raster order."""
        mask = torch.zeros(grid, grid, dtype=torch.bool)
        mask[self.top : self.top + self.height, self.left : self.left + self.width] = True
        return mask.flatten()


def random_box(grid: int, sides: tuple[int, int], generator: torch.Generator) -> CellBox:
    """A box with each side uniform in ``sides`` (inclusive, at most ``grid - 1``), placed
    uniformly inside the grid."""
    lo, hi = sides
    if hi > grid - 1:
        raise ValueError(f"box sides {list(sides)} do not leave context in a {grid}×{grid} grid")

    def draw(high: int) -> int:
        return int(torch.randint(high, (1,), generator=generator))

    height, width = lo + draw(hi - lo + 1), lo + draw(hi - lo + 1)
    return CellBox(draw(grid - height + 1), draw(grid - width + 1), height, width)


@torch.no_grad()
def composite_samples(
    tokenizer: IceTokenizer,
    samples: Tensor,
    *,
    num_images: int,
    count: int,
    sides: tuple[int, int],
    mode: str = "window",
    seed: int = 0,
    compression: int = 8,
    batch: int = 32,
) -> tuple[Tensor, Tensor]:
    """Composite samples and their boxes.

    Args:
        tokenizer: The image tokenizer of the samples.
        samples: (N, L) raw CogLM samples (text area, then ``num_images`` image ids).
        num_images: Image cells per sample (grid²).
        count: Composites to make.
        sides: Box side range in cells (`random_box`).
        mode: ``"window"`` or ``"shrink"`` (module doc).
        seed: Seeds the choice of pictures, captions and boxes.
        compression: VQ-VAE compression (a cell is this many pixels).
        batch: Pictures per encode call.

    Returns:
        ``(composites, regions)``: (count, L) long samples (the pasted concept's text area, the
        composite's image ids) and (count, num_images) bool box cells.
    """
    grid = round(num_images**0.5)
    if grid * grid != num_images:
        raise ValueError(f"num_images must be a square grid, got {num_images}")
    images = samples[:, -num_images:].long()
    if mode not in COMPOSITE_MODES:
        raise ValueError(f"mode must be one of {list(COMPOSITE_MODES)}, got {mode!r}")
    grids, which = torch.unique(images, dim=0, return_inverse=True)  # one picture per concept
    if len(grids) < 2:
        raise ValueError("composites need samples of at least two different pictures")
    pictures = None  # shrink: each concept's picture, decoded once
    if mode == "shrink":
        pictures = torch.cat(
            [
                tokenizer.decode_image(
                    grids[s : s + batch].reshape(-1, grid, grid), compression=compression
                )
                .float()
                .clamp(0, 1)
                for s in range(0, len(grids), batch)
            ]
        )  # (K, 3, grid·c, grid·c)
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(count, samples.shape[1], dtype=torch.long)
    regions = torch.empty(count, num_images, dtype=torch.bool)
    for start in range(0, count, batch):
        chunk = []  # (k, box, ground, pasted picture) per composite
        for k in range(start, min(start + batch, count)):
            pasted = int(torch.randint(len(samples), (1,), generator=gen))  # caption and picture
            ground = int(torch.randint(len(grids) - 1, (1,), generator=gen))
            ground += int(ground >= int(which[pasted]))  # another concept's picture
            chunk.append((k, random_box(grid, sides, gen), ground, int(which[pasted])))
            out[k] = samples[pasted]
        if pictures is None:  # window: the pasted concept's own cells
            inside = [grids[p] for _, _, _, p in chunk]
        else:
            inside = _shrunk_cells(tokenizer, pictures, chunk, compression)
        for (k, box, ground, _), cells_inside in zip(chunk, inside, strict=True):
            cells = box.cells(grid)
            out[k, -num_images:] = torch.where(cells, cells_inside, grids[ground])
            regions[k] = cells
    return out, regions


def _shrunk_cells(
    tokenizer: IceTokenizer,
    pictures: Tensor,
    chunk: list[tuple[int, CellBox, int, int]],
    compression: int,
) -> list[Tensor]:
    """(grid²,) ids per composite of ``chunk``: the ground picture with the pasted one shrunk
    into the box, encoded."""
    made = []
    for _, box, ground, pasted in chunk:
        picture = pictures[ground].clone()
        small = F.interpolate(
            pictures[pasted][None],
            size=(box.height * compression, box.width * compression),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[0]
        top, left = box.top * compression, box.left * compression
        picture[:, top : top + small.shape[1], left : left + small.shape[2]] = small
        made.append(picture)
    encoded = tokenizer.encode_image(torch.stack(made).clamp(0, 1), compression=compression)
    return list(encoded.reshape(len(made), -1).long())


class RegionSamples:
    """``(sample, region)`` pairs read from `COMPOSITE_FILE` and `REGION_FILE`: the items
    `coglm_core.training.make_batch` trains as text-guided infilling."""

    def __init__(self, folder: Path, sequence_length: int, num_images: int) -> None:
        self.samples = TokenDataset(folder / COMPOSITE_FILE, sequence_length)
        self.regions = TokenDataset(folder / REGION_FILE, num_images)
        if len(self.samples) != len(self.regions):
            raise ValueError(
                f"{folder}: {len(self.samples)} composites but {len(self.regions)} boxes"
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        """((L,) long sample, (grid²,) bool box cells)."""
        return self.samples[index], self.regions[index].bool()


def ensure_composite_samples(
    cfg: TrainingConfig, tokenizer: IceTokenizer, sequence_length: int
) -> Path:
    """Write `COMPOSITE_FILE` and `REGION_FILE` from ``coglm-train.bin`` unless they are up to
    date (their meta records the source's SHA-256, the count, the box sides and the seed). Call
    on the main process only. Returns the tokenize folder."""
    folder = cfg.stage_dirs["tokenize"]
    source = folder / "coglm-train.bin"
    meta_path = folder / (COMPOSITE_FILE + ".json")
    recipe = cfg.coglm
    meta = {
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "count": recipe.prompted_infilling,
        "sides": list(recipe.infill_box_sides),
        "mode": recipe.infill_composite,
        "seed": recipe.seed,
    }
    files = (folder / COMPOSITE_FILE, folder / REGION_FILE, meta_path)
    if all(f.is_file() for f in files) and json.loads(meta_path.read_text("utf-8")) == meta:
        return folder
    samples = torch.stack(list(TokenDataset(source, sequence_length)))
    composites, regions = composite_samples(
        tokenizer,
        samples,
        num_images=cfg_low(cfg),
        count=recipe.prompted_infilling,
        sides=recipe.infill_box_sides,
        mode=recipe.infill_composite,
        seed=recipe.seed,
    )
    write_token_file(folder / COMPOSITE_FILE, composites)
    write_token_file(folder / REGION_FILE, regions.long())
    atomic_write_text(meta_path, json.dumps(meta) + "\n")
    _log.info("coglm: %d composite samples for prompted infilling", len(composites))
    return folder
