"""Recipe 3: CogLM pretraining at the low grid with the mixed strategies (paper §3.2).

The loop, the strategies, DDP/FSDP and the step checkpoints are ``coglm_core``'s
(`coglm_core.train`); this module sizes the model from the trained tokenizer and the recipe.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset

from coglm_core import CogLM, CogLMConfig, TokenDataset, TrainConfig, save_pretrained, train
from coglm_core.distributed import full_model_state, is_fsdp
from coglm_core.pretrained import from_pretrained as load_coglm
from coglm_core.pretrained import save_state_dict
from icetk import VocabularyLayout

from ..layout import coglm_id_fields, layout_pad_id
from .composites import RegionSamples, ensure_composite_samples
from .config import FINAL, TrainingConfig
from .roundtrip import ROUNDTRIP_FILE, ensure_roundtrip_samples
from .runtime import barrier, default_device, is_main
from .tokenize_data import cfg_low, ensure_coglm_samples
from .tokenizers import load_trained_tokenizer

__all__ = ["coglm_config", "pretrain_recipe"]

_log = logging.getLogger(__name__)


def coglm_config(cfg: TrainingConfig, layout: VocabularyLayout) -> CogLMConfig:
    """The stage-1 ``CogLMConfig``: recipe sizes + the tokenizer's id layout.

    Positions follow the release's pattern: text ``0..``, BOI at ``sequence_length``, image
    token k at ``sequence_length + 1 + k``.
    """
    rc = cfg.coglm
    n_img = cfg_low(cfg)
    seq = cfg.tokenize.text_slots + 1 + n_img
    return CogLMConfig(
        num_layers=rc.num_layers,
        hidden_size=rc.hidden_size,
        num_attention_heads=rc.num_attention_heads,
        max_sequence_length=seq + 1 + n_img,
        hidden_dropout=rc.dropout,
        attention_dropout=rc.dropout,
        image_grid_size=cfg.data.low_size // 8,
        boi_position=seq,
        image_position_offset=seq + 1,
        **coglm_id_fields(layout),
        sequence_length=seq,
        patch_size=rc.patch_size,
    )


def train_config(cfg: TrainingConfig, caption_only_from: int | None = None) -> TrainConfig:
    """``coglm_core.TrainConfig`` of the recipe (``caption_only_from``: where the caption-only
    round-trip samples start in the dataset)."""
    rc = cfg.coglm
    return TrainConfig(
        global_batch_size=rc.batch_size,
        max_steps=rc.steps,
        lr=rc.lr,
        warmup_steps=rc.warmup_steps,
        min_lr_ratio=rc.min_lr_ratio,
        weight_decay=rc.weight_decay,
        grad_clip=rc.grad_clip,
        seed=rc.seed,
        variant=rc.variant,  # type: ignore[arg-type]
        caption_ratio=rc.caption_ratio,
        text_dropout=rc.text_dropout,
        caption_end=rc.caption_end,
        caption_only_from=caption_only_from,
        checkpoint_every=rc.checkpoint_every,
        autocast_dtype=rc.autocast or None,
        fsdp=rc.fsdp,
        fsdp_mixed_precision=rc.fsdp_mixed_precision,
    )


def pretrain_recipe(
    cfg: TrainingConfig, *, device: str | None = None, progress: bool = True
) -> Path:
    """Pretrain CogLM on ``<workdir>/tokenize/coglm-train.bin`` (or fine-tune ``start_from``'s);
    resumes from the last step folder.

    The sample file is rebuilt first when ``[data]`` changed what it holds (``skin_tones``,
    ``caption_templates``); a resumed run then continues on the new samples.

    Writes ``<workdir>/coglm/step-*/`` (resumable), ``log.jsonl`` and ``final/`` (the
    ``coglm_core.save_pretrained`` folder of the trained model).

    Returns:
        The ``final`` folder.
    """
    out = cfg.stage_dirs["coglm"]
    tokenizer = load_trained_tokenizer(cfg)
    model_cfg = coglm_config(cfg, tokenizer.layout)
    if is_main():
        ensure_coglm_samples(cfg, layout_pad_id(tokenizer.layout))
    barrier()
    folder = cfg.stage_dirs["tokenize"]
    data = TokenDataset(folder / "coglm-train.bin", model_cfg.sequence_length)
    if cfg.coglm.prompted_infilling:  # (sample, box) pairs: text-guided infilling
        if is_main():
            ensure_composite_samples(cfg, tokenizer, model_cfg.sequence_length)
        barrier()
        pairs = RegionSamples(folder, model_cfg.sequence_length, cfg_low(cfg))
        data = ConcatDataset([data, pairs])
    caption_only_from = None
    if cfg.coglm.caption_roundtrip:  # caption-only copies on round-trip image tokens
        if is_main():
            ensure_roundtrip_samples(cfg, tokenizer, model_cfg.sequence_length, progress=progress)
        barrier()
        extra = TokenDataset(folder / ROUNDTRIP_FILE, model_cfg.sequence_length)
        caption_only_from = len(data)
        data = ConcatDataset([data, extra])
    torch.manual_seed(cfg.coglm.seed)
    if cfg.start_from:  # fine-tune the weights folder's CogLM (its own sizes)
        model = load_coglm(
            Path(cfg.start_from) / "coglm", device=default_device(device), dtype=torch.float32
        )
    else:
        model = CogLM(model_cfg).to(default_device(device))
    n = sum(p.numel() for p in model.parameters())
    _log.info("coglm: %.2fM parameters, %d samples", n / 1e6, len(data))
    train(model, data, train_config(cfg, caption_only_from), out, progress=progress)
    if is_fsdp(model):  # sharded parameters: gather them (every rank) and write on rank 0
        state = full_model_state(model)
        if is_main():
            save_state_dict(state, model.config, out / FINAL)
    elif is_main():
        save_pretrained(model, out / FINAL)
    barrier()
    return out / FINAL
