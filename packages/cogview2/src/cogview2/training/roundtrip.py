"""Caption samples on round-trip image tokens (``[coglm] caption_roundtrip``).

A picture the pipeline drew does not re-encode to the tokens it was drawn from: decoding a
20×20 grid of the demo's renders and encoding the decoded picture again keeps only 27–63 % of
the tokens (the README's four concepts), and the demo's captions of such pictures named other
concepts. With ``caption_roundtrip`` every CogLM sample gets a copy whose image tokens went through
decode → encode with the run's tokenizer; the copies train only the caption task
(``coglm_core.TrainConfig.caption_only_from``), so the generation targets stay the renders'.
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


def ensure_roundtrip_samples(
    cfg: TrainingConfig, tokenizer: IceTokenizer, sequence_length: int, *, progress: bool = True
) -> Path:
    """Write ``ROUNDTRIP_FILE`` from ``coglm-train.bin`` unless it is up to date (its meta
    records the source file's SHA-256). Call on the main process only. Returns the file."""
    folder = cfg.stage_dirs["tokenize"]
    source = folder / "coglm-train.bin"
    path, meta_path = folder / ROUNDTRIP_FILE, folder / (ROUNDTRIP_FILE + ".json")
    meta = {"source_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    fresh = path.is_file() and meta_path.is_file()
    if fresh and json.loads(meta_path.read_text(encoding="utf-8")) == meta:
        return path
    samples = torch.stack(list(TokenDataset(source, sequence_length)))  # (N, sequence_length)
    n_img = (cfg.data.low_size // 8) ** 2
    chunks = []
    for s in tqdm(range(0, len(samples), 256), disable=not progress, desc="round trip"):
        chunks.append(roundtrip_ids(tokenizer, samples[s : s + 256, -n_img:]))
    again = samples.clone()
    again[:, -n_img:] = torch.cat(chunks)
    kept = (again[:, -n_img:] == samples[:, -n_img:]).float().mean().item()
    write_token_file(path, again)
    atomic_write_text(meta_path, json.dumps(meta) + "\n")
    _log.info(
        "coglm: %d round-trip caption samples (%.0f%% of tokens kept)", len(again), 100 * kept
    )
    return path
