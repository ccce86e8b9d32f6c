"""Caption samples on round-trip image tokens (``[coglm] caption_roundtrip``).

A picture the pipeline drew does not re-encode to the tokens it was drawn from. On the README's
four concepts, the 480 px picture the demo draws re-encodes (at 160 px) to 18–52 % of its stage-1
tokens (the render's), and the demo's captions of such pictures named other concepts in 6 of 16
cases. With ``caption_roundtrip`` every CogLM sample gets a copy whose image tokens made a round
trip; the copies train only the caption task (``coglm_core.TrainConfig.caption_only_from``), so
the generation targets stay the renders'. Two round trips:

- ``"decode"``: decode the 20×20 grid, encode the picture again (27–63 % of tokens kept; closer
  to a drawn picture's than the render's, but not close: 41–63 %);
- ``"pipeline"``: the SR stages of the ``start_from`` weights draw the 480 px picture from the
  grid and the sample's caption (as ``cogview2 generate`` does after stage 1), which is brought
  to 160 px and encoded as ``CogView2Pipeline.caption`` does: the tokens a caption of a drawn
  picture sees.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from coglm_core import atomic_write_text
from coglm_core.data import TokenDataset, write_token_file
from icetk import IceTokenizer

from .config import TrainingConfig
from .tokenize_data import cfg_low

ROUNDTRIP_FILE = "coglm-caption-roundtrip.bin"
"""Caption-only samples, beside ``coglm-train.bin`` in the tokenize folder."""

_log = logging.getLogger(__name__)


@torch.no_grad()
def roundtrip_ids(
    tokenizer: IceTokenizer, ids: torch.Tensor, *, compression: int = 8, batch: int = 32
) -> torch.Tensor:
    """The ids of the decoded pictures, encoded again.

    Args:
        tokenizer: The image tokenizer the ids come from.
        ids: (N, g, g) or (N, g²) image ids.
        compression: VQ-VAE compression (8: a 20×20 grid is a 160 px picture).
        batch: Pictures per decode/encode call.

    Returns:
        (N, g²) long ids of ``encode(clamp(decode(ids), 0, 1))``.
    """
    n = ids.shape[0]
    grid = round(ids[0].numel() ** 0.5)
    if grid * grid != ids[0].numel():
        raise ValueError(f"image ids must be square grids, got {tuple(ids.shape)}")
    grids = ids.reshape(n, grid, grid).long()
    out = []
    for s in range(0, n, batch):
        pictures = tokenizer.decode_image(grids[s : s + batch], compression=compression)
        again = tokenizer.encode_image(pictures.float().clamp(0, 1), compression=compression)
        out.append(again.reshape(-1, grid * grid).long())
    return torch.cat(out) if out else grids.reshape(0, grid * grid)


@torch.no_grad()
def pipeline_roundtrip_ids(
    pipe, prompts: list[str], ids: torch.Tensor, *, seed: int = 0, progress: bool = True
) -> torch.Tensor:
    """The stage-1 ids of the pictures the pipeline's SR stages draw from ``ids``.

    Args:
        pipe: A ``CogView2Pipeline`` (its default style and stages).
        prompts: One raw prompt per grid.
        ids: (N, g²) stage-1 ids.
        seed: Picture i is drawn with ``torch.Generator().manual_seed(seed + i)``.
        progress: A progress bar.

    Returns:
        (N, g²) long: each picture brought to the stage-1 size and encoded as
        ``CogView2Pipeline.caption`` does.
    """
    out = []
    for i in tqdm(range(len(prompts)), disable=not progress, desc="round trip (pipeline)"):
        gen = torch.Generator().manual_seed(seed + i)
        picture = pipe.super_resolve(prompts[i], ids[i : i + 1], generator=gen).images
        out.append(pipe.encode_pixels(picture.float(), pipe.low_image_size).reshape(1, -1).long())
    return torch.cat(out) if out else ids.reshape(0, ids.shape[-1]).long()


def _pipeline_ids(
    cfg: TrainingConfig, tokenizer: IceTokenizer, samples: torch.Tensor, n_img: int, progress: bool
) -> torch.Tensor:
    """``pipeline_roundtrip_ids`` of the samples, each distinct grid drawn once with the English
    caption of its first sample."""
    from ..pipeline import CogView2Pipeline

    pipe = CogView2Pipeline.from_pretrained(cfg.start_from, dtype=torch.float32)
    pad = pipe.coglm.config.pad_id
    grids, first = torch.unique(samples[:, -n_img:], dim=0, return_inverse=True)
    prompts = [""] * len(grids)
    for row in reversed(range(len(samples))):  # the first sample of each grid wins
        text = samples[row, :-n_img].tolist()
        prompts[int(first[row])] = tokenizer.decode_text(
            text[: text.index(pad)] if pad in text else text
        )
    drawn = pipeline_roundtrip_ids(pipe, prompts, grids, progress=progress)
    return drawn[first]


def _sr_digest(folder: Path) -> str:
    """SHA-256 over the files of the weights folder's SR models and manifest."""
    digest = hashlib.sha256()
    files = [
        folder / "pipeline.json",
        *sorted((folder / "dsr").rglob("*")),
        *sorted((folder / "itersr").rglob("*")),
    ]
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def ensure_roundtrip_samples(
    cfg: TrainingConfig, tokenizer: IceTokenizer, sequence_length: int, *, progress: bool = True
) -> Path:
    """Write ``ROUNDTRIP_FILE`` from ``coglm-train.bin`` unless it is up to date (its meta
    records the source file's SHA-256, the round trip and, for ``"pipeline"``, the SHA-256 of
    the SR models that drew the pictures). Call on the main process only.
    Returns the file."""
    folder = cfg.stage_dirs["tokenize"]
    source = folder / "coglm-train.bin"
    path, meta_path = folder / ROUNDTRIP_FILE, folder / (ROUNDTRIP_FILE + ".json")
    mode = cfg.coglm.caption_roundtrip
    meta = {
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "mode": mode,
        "start_from": str(cfg.start_from) if mode == "pipeline" else None,
        # the SR models that draw the pictures: new weights in the same folder redraw them
        "sr_sha256": _sr_digest(Path(cfg.start_from)) if mode == "pipeline" else None,
    }
    fresh = path.is_file() and meta_path.is_file()
    if fresh and json.loads(meta_path.read_text(encoding="utf-8")) == meta:
        return path
    samples = torch.stack(list(TokenDataset(source, sequence_length)))  # (N, sequence_length)
    n_img = cfg_low(cfg)
    again = samples.clone()
    if mode == "pipeline":
        again[:, -n_img:] = _pipeline_ids(cfg, tokenizer, samples, n_img, progress)
    else:  # roundtrip_ids batches the decode/encode itself
        again[:, -n_img:] = roundtrip_ids(tokenizer, samples[:, -n_img:])
    kept = (again[:, -n_img:] == samples[:, -n_img:]).float().mean().item()
    write_token_file(path, again)
    atomic_write_text(meta_path, json.dumps(meta) + "\n")
    _log.info(
        "coglm: %d round-trip caption samples (%.0f%% of tokens kept)", len(again), 100 * kept
    )
    return path
