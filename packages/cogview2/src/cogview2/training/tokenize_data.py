"""Recipe 2: tokenise the data set with the trained tokenizers; K-means cluster labels.

Outputs in ``<workdir>/tokenize/``:

* ``tokenizer/``: the ``IceTokenizer`` (``save_pretrained``) the later stages use;
* ``<split>.safetensors``: ``low`` (N, low²) int32 image ids, ``group_id`` / ``subgroup_id``
  (N,) int32, ``skin_tone_variant`` (N,) int32 (1: a skin-tone variant of its concept), in the
  data set's record order; ``high`` (M, high²) int32 ids of the M images in ``high_index``
  (M,) int32 (all N, or a seeded subset when ``[tokenize] high_images`` is set);
* ``<split>-text.json``: per record, ``{"<template>": {"en": ids, "zh": ids}}``;
* ``coglm-train.bin``: CogLM samples (int32, ``text_slots + 1 + low²`` each, reference.md §8.1),
  one per (training image the recipes keep, caption template), and ``coglm-train.json``, the
  settings it was built with (`ensure_coglm_samples` rebuilds it when they change);
* ``cluster_labels.npy``: (num_codes,) int64 K-means labels of the codebook.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from cluster_sampling import cluster_codebook
from coglm_core import atomic_write_text
from coglm_core.data import write_token_file
from icetk import IceTokenizer

from ..data import SPLITS, EmojiDataset, make_caption
from ..data.dataset import select_records
from ..folder_format import LABELS_FILE, atomic_save_tensors
from ..layout import layout_pad_id
from .config import TrainingConfig
from .runtime import barrier, is_main, world
from .tokenizers import load_trained_tokenizer

__all__ = [
    "coglm_sample",
    "ensure_coglm_samples",
    "kept_records",
    "load_token_split",
    "tokenize_recipe",
    "training_rows",
]

_log = logging.getLogger(__name__)


def coglm_sample(
    en: list[int], zh: list[int], low: torch.Tensor, text_slots: int, pad_id: int
) -> torch.Tensor:
    """One pretraining sample ``[en, pad, zh, pad, ..., pad(slot), low ids]`` (§8.1).

    Chinese is dropped when both do not fit; English is cut to ``text_slots`` tokens.

    Returns:
        (text_slots + 1 + low.numel(),) long.
    """
    text = [*list(en), pad_id, *list(zh)] if len(en) + 1 + len(zh) <= text_slots else list(en)
    text = text[:text_slots]
    area = torch.full((text_slots + 1,), pad_id, dtype=torch.long)
    area[: len(text)] = torch.tensor(text, dtype=torch.long)
    return torch.cat([area, low.reshape(-1).long()])


def _encode_chunk(
    tokenizer: IceTokenizer, data: EmojiDataset, indices: Sequence[int], batch: int
) -> torch.Tensor:
    """(len(indices), grid²) int32 ids of the renders ``indices`` of ``data``."""
    grid = data.size // 8
    out = [torch.zeros(0, grid * grid, dtype=torch.int32)]
    for s in range(0, len(indices), batch):
        ids = indices[s : s + batch]
        images = torch.stack([data[i]["image"] for i in ids]).float() / 255.0
        out.append(tokenizer.encode_image(images, compression=8).reshape(len(ids), -1).int())
    return torch.cat(out)


def high_subset(n: int, limit: int, seed: int) -> list[int]:
    """Sorted record indices whose high-resolution render is tokenised: all ``n`` when
    ``limit`` is 0 or at least ``n``, else a subset of ``limit`` drawn with ``seed``."""
    if limit == 0 or limit >= n:
        return list(range(n))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return sorted(perm[:limit].tolist())


def _high_limit(cfg: TrainingConfig, split: str, n: int) -> int:
    """``high_images`` for the training split; the same fraction of the other splits."""
    limit = cfg.tokenize.high_images
    if limit == 0 or split == "train":
        return limit
    n_train = len(
        EmojiDataset(cfg.data.root, "train", cfg.data.low_size, styles=cfg.data.style_filter)
    )
    return max(1, -(-limit * n // max(n_train, 1)))


def _high_index(cfg: TrainingConfig, split: str, records: list[dict]) -> list[int]:
    """Sorted record indices of ``split`` whose high-resolution render is tokenised."""
    if cfg.tokenize.high_subset == "trained":
        return kept_records(cfg, records, split)
    return high_subset(len(records), _high_limit(cfg, split, len(records)), cfg.tokenize.seed)


def _tokenize_split(
    cfg: TrainingConfig, tokenizer: IceTokenizer, split: str, out: Path, progress: bool
) -> None:
    styles = cfg.data.style_filter
    low = EmojiDataset(cfg.data.root, split, cfg.data.low_size, styles=styles)
    high = EmojiDataset(cfg.data.root, split, cfg.data.high_size, styles=styles)
    chunk = 8 * cfg.tokenize.batch_size
    starts = list(range(0, len(low), chunk))
    rank, size = world()
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    high_index = _high_index(cfg, split, low.records)
    wanted = set(high_index)
    mine = [k for k in range(len(starts)) if k % size == rank]
    for k in tqdm(mine, disable=not progress or rank != 0, desc=f"tokenize {split}"):
        path = parts / f"{split}-{k:05d}.safetensors"
        if path.is_file():  # resumable: finished chunks are kept
            continue
        ids = range(starts[k], min(starts[k] + chunk, len(low)))
        high_ids = [i for i in ids if i in wanted]
        tensors = {
            "low": _encode_chunk(tokenizer, low, ids, cfg.tokenize.batch_size),
            "high": _encode_chunk(tokenizer, high, high_ids, cfg.tokenize.batch_size),
        }
        atomic_save_tensors(tensors, path)
    barrier()
    if not is_main():
        return
    pieces = [load_file(parts / f"{split}-{k:05d}.safetensors") for k in range(len(starts))]
    records = low.records
    tensors = {
        "low": torch.cat([p["low"] for p in pieces]) if pieces else torch.zeros(0, cfg_low(cfg)),
        "high": torch.cat([p["high"] for p in pieces]) if pieces else torch.zeros(0, cfg_high(cfg)),
        "high_index": torch.tensor(high_index, dtype=torch.int32),
        "group_id": torch.tensor([int(r["group_id"]) for r in records], dtype=torch.int32),
        "subgroup_id": torch.tensor([int(r["subgroup_id"]) for r in records], dtype=torch.int32),
        "skin_tone_variant": torch.tensor(
            [r["code"] != r["concept"] for r in records], dtype=torch.int32
        ),
    }
    atomic_save_tensors(
        {k: v.to(torch.int32) for k, v in tensors.items()}, out / f"{split}.safetensors"
    )
    texts = [
        {
            t: {lang: tokenizer.encode_text(make_caption(r, lang, t)) for lang in ("en", "zh")}
            for t in cfg.data.caption_templates
        }
        for r in records
    ]
    atomic_write_text(out / f"{split}-text.json", json.dumps(texts, ensure_ascii=False) + "\n")


def cfg_low(cfg: TrainingConfig) -> int:
    """Tokens of a stage-1 grid (``(low_size / 8)²``)."""
    return (cfg.data.low_size // 8) ** 2


def cfg_high(cfg: TrainingConfig) -> int:
    """Tokens of a super-resolution grid (``(high_size / 8)²``)."""
    return (cfg.data.high_size // 8) ** 2


def load_token_split(folder: Path, split: str) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """The tensors and caption ids of one tokenised split (see the module docstring)."""
    path = folder / f"{split}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `cogview2 train tokenize` first")
    texts = json.loads((folder / f"{split}-text.json").read_text(encoding="utf-8"))
    return load_file(path), texts


def kept_records(cfg: TrainingConfig, records: list[dict], split: str = "train") -> list[int]:
    """Sorted indices of the ``records`` (of one split, in order) that the recipes train on:
    ``[data] train_styles`` and ``train_groups`` (an empty list keeps every value), and
    ``skin_tones = false`` drops the skin-tone variants (``code != concept``).

    Raises:
        ValueError: a train style or group with no record in the split.
    """
    rows = select_records(
        records,
        range(len(records)),
        {"style": cfg.data.train_styles, "group": cfg.data.train_groups},
        error="[data] train_{key}s {unknown} have no "
        + ("training" if split == "train" else split)
        + " records; the data set has {present}",
    )
    if not cfg.data.skin_tones:
        rows = [i for i in rows if records[i]["code"] == records[i]["concept"]]
    return sorted(rows)


def training_rows(cfg: TrainingConfig, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """Record indices of the tokenised training split that the recipes train on
    (``[data] skin_tones``, ``train_styles`` and ``train_groups``; see `kept_records`).

    Returns:
        (K,) long, ascending.

    Raises:
        ValueError: ``skin_tones = false`` on a split tokenised before the flag existed, or
            ``train_styles`` / ``train_groups`` that do not match the data set.
    """
    n = len(tensors["low"])
    if not cfg.data.skin_tones and "skin_tone_variant" not in tensors:
        raise ValueError(
            "[data] skin_tones = false needs the skin_tone_variant flag of the tokenised "
            "split; re-run `cogview2 train tokenize` (cheap: the encoded chunks are kept)"
        )
    if cfg.data.skin_tones and not cfg.data.train_styles and not cfg.data.train_groups:
        return torch.arange(n)
    # the tokenised split holds the data set's training records in order (``styles`` applied)
    records = EmojiDataset(
        cfg.data.root, "train", cfg.data.low_size, styles=cfg.data.style_filter
    ).records
    if len(records) != n:
        raise ValueError(
            f"the tokenised training split has {n} records, the data set {len(records)}: "
            "re-run `cogview2 train tokenize` on this data set"
        )
    return torch.tensor(kept_records(cfg, records), dtype=torch.long)


def _samples_meta(cfg: TrainingConfig) -> dict:
    """The settings ``coglm-train.bin`` depends on beyond the tokenised split."""
    return {
        "skin_tones": cfg.data.skin_tones,
        "train_styles": sorted(cfg.data.train_styles),
        "train_groups": sorted(cfg.data.train_groups),
        "caption_templates": list(cfg.data.caption_templates),
        "text_slots": cfg.tokenize.text_slots,
    }


def ensure_coglm_samples(cfg: TrainingConfig, pad_id: int) -> Path:
    """Write ``coglm-train.bin`` from the tokenised training split unless it is up to date.

    Call on the main process only. Returns the file.
    """
    out = cfg.stage_dirs["tokenize"]
    path, meta_path = out / "coglm-train.bin", out / "coglm-train.json"
    meta = _samples_meta(cfg)
    if (
        path.is_file()
        and meta_path.is_file()
        and json.loads(meta_path.read_text(encoding="utf-8")) == meta
    ):
        return path
    tensors, texts = load_token_split(out, "train")
    samples = [
        coglm_sample(
            texts[i][tpl]["en"], texts[i][tpl]["zh"], tensors["low"][i], meta["text_slots"], pad_id
        )
        for i in training_rows(cfg, tensors).tolist()
        for tpl in cfg.data.caption_templates
    ]
    if not samples:
        raise ValueError(f"no training samples in {cfg.data.root}")
    write_token_file(path, torch.stack(samples))
    atomic_write_text(meta_path, json.dumps(meta) + "\n")
    _log.info("tokenize: %d CogLM samples", len(samples))
    return path


def tokenize_recipe(cfg: TrainingConfig, *, progress: bool = True) -> Path:
    """Run recipe 2 (chunks are shared among ``torchrun`` processes and kept on interruption).

    Returns:
        The stage folder.
    """
    out = cfg.stage_dirs["tokenize"]
    tokenizer = load_trained_tokenizer(cfg)
    if is_main():
        tokenizer.save_pretrained(out / "tokenizer")
    for split in SPLITS:
        _tokenize_split(cfg, tokenizer, split, out, progress)
    if is_main():
        (out / "coglm-train.json").unlink(missing_ok=True)  # the split may have changed
        ensure_coglm_samples(cfg, layout_pad_id(tokenizer.layout))
        tmp = out / ".cluster_labels.tmp.npy"
        if cfg.start_from:  # the labels the weights folder's CogLM was sampled with
            np.save(tmp, np.load(Path(cfg.start_from) / LABELS_FILE, allow_pickle=False))
        else:
            k = min(cfg.tokenize.num_clusters, tokenizer.num_image_tokens)
            labels = cluster_codebook(tokenizer.codebook, k, seed=cfg.tokenize.seed)
            np.save(tmp, labels.numpy().astype(np.int64))
            _log.info("tokenize: %d clusters", k)
        tmp.replace(out / "cluster_labels.npy")
    barrier()
    return out
