"""Recipes 1a/1b: the text tokenizer (sentencepiece) and the VQ-VAE, through icetk's trainers."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from coglm_core import atomic_write_text
from icetk import (
    HVQVAE,
    IceTokenizer,
    ImageTokenizer,
    TextTokenizer,
    TextTrainConfig,
    VocabularyLayout,
    VQVAEConfig,
    load_vqvae,
    save_vqvae,
    train_text_tokenizer,
)
from icetk.train_image import ImageTrainConfig, train_vqvae

from ..data import EmojiDataset, make_caption
from .config import TrainingConfig
from .runtime import barrier, default_device, is_main

__all__ = ["CropDataset", "load_trained_tokenizer", "train_text_recipe", "train_vqvae_recipe"]

_log = logging.getLogger(__name__)

TEXT_MODEL = "text.model"
LAYOUT_FILE = "layout.json"
VQVAE_FILE = "vqvae.safetensors"
VQVAE_CONFIG = "vqvae_config.json"


def vqvae_config(cfg: TrainingConfig) -> VQVAEConfig:
    """The VQ-VAE size of the recipe (an icetk preset with ``num_codes``)."""
    return getattr(VQVAEConfig, cfg.vqvae.preset)(num_codes=cfg.vqvae.num_codes)


def train_text_recipe(cfg: TrainingConfig, *, progress: bool = True) -> Path:
    """Train the sentencepiece model on the English and Chinese training captions.

    Writes ``<workdir>/text_tokenizer/{corpus.txt, text.model, layout.json}`` (rank 0; the
    others wait). Re-running with the outputs present does nothing (it is one short step).

    Returns:
        The stage folder.
    """
    out = cfg.stage_dirs["text_tokenizer"]
    if is_main() and not (out / LAYOUT_FILE).is_file():
        data = EmojiDataset(cfg.data.root, "train", cfg.data.low_size, styles=cfg.data.style_filter)
        lines: list[str] = []
        for record in data.records:
            for template in cfg.text_tokenizer.templates:
                lines += [make_caption(record, lang, template) for lang in ("en", "zh")]
        atomic_write_text(out / "corpus.txt", "\n".join(lines) + "\n")
        model, layout = train_text_tokenizer(
            out / "corpus.txt",
            num_image_tokens=cfg.vqvae.num_codes,
            config=TextTrainConfig(vocab_size=cfg.text_tokenizer.vocab_size),
        )
        (out / f".{TEXT_MODEL}.tmp").write_bytes(model)
        (out / f".{TEXT_MODEL}.tmp").replace(out / TEXT_MODEL)
        atomic_write_text(out / LAYOUT_FILE, layout.to_json() + "\n")
        _log.info("text tokenizer: %d pieces from %d lines", layout.num_text_tokens, len(lines))
    barrier()
    return out


class CropDataset(Dataset):
    """Training images of the VQ-VAE: float (3, crop, crop) in [0, 1].

    Item ``i`` is a random ``crop``-px crop of the large render of sample ``i`` or, with
    probability ``low_fraction``, of its low-size render, so the codebook serves both the
    20×20 and the 60×60 grid scales (the VQ-VAE is convolutional: crops train it as whole
    images do). The randomness of item ``i`` comes from a generator seeded by (seed, i, how
    often ``i`` was read in this process).

    Args:
        low: The data set at the stage-1 size.
        high: The same samples at the super-resolution size.
        crop: Crop side (px), at most the low size.
        low_fraction: Probability of a crop of the low-size render.
        seed: Seed of the crops.
    """

    def __init__(
        self, low: EmojiDataset, high: EmojiDataset, crop: int, low_fraction: float, seed: int
    ) -> None:
        if len(low) != len(high) or crop > low.size:
            raise ValueError(
                f"low/high data sets differ in length, or crop {crop} exceeds the low size {low.size}"
            )
        self.low, self.high, self.crop = low, high, crop
        self.low_fraction, self.seed = low_fraction, seed
        self._reads: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.low)

    def __getitem__(self, i: int) -> Tensor:
        k = self._reads.get(i, 0)
        self._reads[i] = k + 1
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + i) * 1_009 + k)
        data = self.low if float(torch.rand((), generator=gen)) < self.low_fraction else self.high
        image = Image.open(io.BytesIO(data.image_bytes(i))).convert("RGB")
        x, y = (int(v) for v in torch.randint(0, data.size - self.crop + 1, (2,), generator=gen))
        image = image.crop((x, y, x + self.crop, y + self.crop))
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def train_vqvae_recipe(
    cfg: TrainingConfig, *, device: str | None = None, progress: bool = True
) -> Path:
    """Train the VQ-VAE with ``icetk.train_image.train_vqvae`` on crops of both render sizes
    (resumable from icetk's checkpoint).

    icetk's trainer is one process: under ``torchrun`` rank 0 trains and the others wait.
    Writes ``<workdir>/vqvae/{checkpoint.pt, log.jsonl, vqvae.safetensors, vqvae_config.json}``.

    Returns:
        The stage folder.
    """
    out = cfg.stage_dirs["vqvae"]
    rc = cfg.vqvae
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        styles = cfg.data.style_filter
        low = EmojiDataset(cfg.data.root, "train", cfg.data.low_size, styles=styles)
        high = EmojiDataset(cfg.data.root, "train", cfg.data.high_size, styles=styles)
        images = CropDataset(low, high, rc.crop, rc.low_fraction, rc.seed)
        vq_cfg = vqvae_config(cfg)
        torch.manual_seed(rc.seed)
        model = HVQVAE(vq_cfg)
        train_cfg = ImageTrainConfig(
            steps=rc.steps,
            batch_size=rc.batch_size,
            lr=rc.lr,
            log_every=rc.log_every,
            checkpoint_every=rc.checkpoint_every,
            bf16=rc.autocast == "bfloat16",
            seed=rc.seed,
        )
        metrics = train_vqvae(
            model,
            images,
            train_cfg,
            out / "checkpoint.pt",
            device=default_device(device),
            log_file=out / "log.jsonl",
            progress=progress,
        )
        save_vqvae(model.cpu(), out / VQVAE_FILE)
        atomic_write_text(out / VQVAE_CONFIG, json.dumps(vq_cfg.to_dict(), indent=2) + "\n")
        _log.info("vqvae: %s", metrics)
    barrier()
    return out


def load_trained_tokenizer(cfg: TrainingConfig) -> IceTokenizer:
    """The IceTokenizer made of the two trained parts (text model + VQ-VAE), or the one of
    ``start_from``'s weights folder (in float32).

    Raises:
        FileNotFoundError: a recipe has not run yet (names the file).
    """
    if cfg.start_from:
        tokenizer = IceTokenizer.from_pretrained(Path(cfg.start_from) / "tokenizer")
        tokenizer.image.model.float()
        return tokenizer
    text_dir, vq_dir = cfg.stage_dirs["text_tokenizer"], cfg.stage_dirs["vqvae"]
    for path in (text_dir / LAYOUT_FILE, text_dir / TEXT_MODEL, vq_dir / VQVAE_CONFIG):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run the earlier recipes first")
    layout = VocabularyLayout.from_json((text_dir / LAYOUT_FILE).read_text(encoding="utf-8"))
    text = TextTokenizer.from_file(text_dir / TEXT_MODEL, layout)
    vq_cfg = VQVAEConfig.from_dict(json.loads((vq_dir / VQVAE_CONFIG).read_text(encoding="utf-8")))
    return IceTokenizer(text, ImageTokenizer(load_vqvae(vq_dir / VQVAE_FILE, vq_cfg)))
