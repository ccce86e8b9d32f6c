"""The final step: the trained components as one pipeline weights folder (fp16 safetensors)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from coglm_core.pretrained import from_pretrained as load_coglm
from icetk import IceTokenizer

from ..config import PipelineConfig
from ..models.sr import SHARED, load_sr
from ..pipeline import CogView2Pipeline
from .config import FINAL, TrainingConfig

__all__ = ["assemble_recipe", "folder_megabytes"]

_log = logging.getLogger(__name__)


def folder_megabytes(folder: Path) -> float:
    """Total size of the files below ``folder`` in MB (10⁶ bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


def assemble_recipe(cfg: TrainingConfig, *, out: str | Path | None = None) -> Path:
    """Load the trained tokenizer, CogLM, DSR, ITERSR and cluster labels; write the pipeline.

    DSR's frozen base is CogLM itself, so it is stored once (a DSR trained with
    ``[dsr] train_base`` keeps its own). With ``start_from``, the models this run did not
    train are that folder's. Floating tensors are cast to
    ``cfg.assemble.dtype`` (the VQ-VAE included).

    Args:
        cfg: The recipe configuration.
        out: Output folder (default ``cfg.assemble.out``).

    Returns:
        The weights folder.

    Raises:
        FileNotFoundError: an earlier recipe has not finished (names the missing file).
        ValueError: the folder exceeds ``cfg.assemble.max_megabytes``.
    """
    dirs = cfg.stage_dirs
    dtype = getattr(torch, cfg.assemble.dtype)
    tokenizer = IceTokenizer.from_pretrained(dirs["tokenize"] / "tokenizer")
    given = (
        CogView2Pipeline.from_pretrained(cfg.start_from, dtype=dtype) if cfg.start_from else None
    )
    coglm = load_coglm(cfg.coglm_folder, dtype=dtype) if cfg.trains("coglm") else given.coglm
    if cfg.trains("dsr"):
        # DSR shares CogLM unless its recipe fine-tuned its own copy (``[dsr] train_base``)
        shares = None if (dirs["dsr"] / FINAL / "base").is_dir() else SHARED
        dsr = load_sr(dirs["dsr"] / FINAL, coglm, shares, device="cpu", dtype=dtype)
    else:  # start_from's DSR keeps its own base (written apart if CogLM was fine-tuned)
        dsr = given.dsr
    if cfg.trains("itersr"):
        itersr = load_sr(dirs["itersr"] / FINAL, coglm, None, device="cpu", dtype=dtype)
    else:
        itersr = given.itersr
    labels_path = dirs["tokenize"] / "cluster_labels.npy"
    if not labels_path.is_file():
        raise FileNotFoundError(f"{labels_path} not found; run `cogview2 train tokenize` first")
    labels = torch.from_numpy(np.load(labels_path, allow_pickle=False))
    tokenizer.image.model.to(dtype)
    caption_end = (
        cfg.coglm.caption_end if cfg.trains("coglm") else given.config.caption_end  # type: ignore[union-attr]
    )
    config = PipelineConfig(
        default_style="plain",
        completion_style="plain",
        guidance_scale=cfg.assemble.guidance_scale,
        caption_end=caption_end,
        caption_temperature=cfg.assemble.caption_temperature,
        default_stages=cfg.assemble.default_stages,
        completion_fill=cfg.assemble.completion_fill,
    )
    pipe = CogView2Pipeline(tokenizer, coglm, dsr, itersr, labels, config)  # type: ignore[arg-type]
    folder = Path(out or cfg.assemble.out)
    pipe.save_pretrained(folder)
    size = folder_megabytes(folder)
    _log.info("assemble: wrote %s (%.1f MB)", folder, size)
    if size > cfg.assemble.max_megabytes:
        raise ValueError(
            f"{folder} holds {size:.1f} MB, over max_megabytes = {cfg.assemble.max_megabytes}; "
            "shrink the models in the recipe config"
        )
    return folder
