"""Recipes 4 and 5: direct super-resolution (§3.3, reference.md §4.5) and iterative
super-resolution fine-tuning (BERT-style masks, ratios drawn from {0.2, 0.4, 0.6, 0.8, 0.9})."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coglm_core.distributed import full_model_state, is_fsdp
from coglm_core.pretrained import from_pretrained as load_coglm

from ..models.config import DSRConfig, ITERSRConfig
from ..models.sr import (
    DirectSuperResolution,
    IterativeSuperResolution,
    save_sr_parts,
    tile_extra_positions,
)
from ..pipeline import CogView2Pipeline
from .config import FINAL, TrainingConfig
from .loop import run_loop
from .runtime import barrier, default_device, is_main, wrap_model
from .tokenize_data import load_token_split, training_rows

__all__ = [
    "SRLoss",
    "dsr_recipe",
    "itersr_recipe",
    "sample_text",
    "save_sharded_sr_folder",
    "sr_samples",
]

_log = logging.getLogger(__name__)


def sample_generator(seed: int, step: int, index: int) -> torch.Generator:
    """The random source of sample ``index`` at ``step`` (text choice, mask)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 1_000_033 + index)


def sample_text(texts: dict[str, dict[str, list[int]]], gen: torch.Generator) -> list[int]:
    """A caption (template and language drawn with ``gen``) of one record."""
    options = [ids for per_lang in texts.values() for ids in per_lang.values() if ids]
    return options[int(torch.randint(len(options), (1,), generator=gen))]


class SRLoss(nn.Module):
    """One forward over a local batch: summed cross-entropy and its number of terms.

    Samples are grouped by text length (the SR models take one length per call); wrapping this
    module (not the SR model) in DDP keeps one DDP forward per backward.

    Args:
        model: A `DirectSuperResolution` or `IterativeSuperResolution`.
        mask_ratios: ITERSR only: a ratio per sample; that fraction of hi-res tokens becomes BOI
            and only those positions count.
    """

    def __init__(
        self,
        model: DirectSuperResolution | IterativeSuperResolution,
        mask_ratios: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.mask_ratios = mask_ratios
        self.iterative = isinstance(model, IterativeSuperResolution)

    def forward(
        self, texts: list[list[int]], low: Tensor, high: Tensor, gens: list[torch.Generator]
    ) -> tuple[Tensor, Tensor]:
        """Args: texts (B lists), low (B, low²), high (B, high²) long; one generator per sample.

        Returns:
            (summed loss, count) as 0-d tensors.
        """
        device = self.model.extra_positions.device
        slots = self.model.config.text_slots if self.iterative else self.model.config.max_text_len
        texts = [t[:slots] for t in texts]
        total = torch.zeros((), device=device)
        count = torch.zeros((), device=device)
        for length in sorted({len(t) for t in texts}):
            rows = [i for i, t in enumerate(texts) if len(t) == length]
            text = torch.tensor([texts[i] for i in rows], dtype=torch.long, device=device)
            target = high[rows].long().to(device)
            if self.iterative:
                masks = []
                for i in rows:
                    ratio = self.mask_ratios[
                        int(torch.randint(len(self.mask_ratios), (1,), generator=gens[i]))
                    ]
                    n = target.shape[1]
                    k = max(1, round(ratio * n))
                    m = torch.zeros(n, dtype=torch.bool)
                    m[torch.randperm(n, generator=gens[i])[:k]] = True
                    masks.append(m)
                mask = torch.stack(masks).to(device)
                inputs = torch.where(
                    mask, torch.full_like(target, self.model.base.config.boi_id), target
                )
                logits = self.model(text, inputs)
                total = total + F.cross_entropy(logits[mask].float(), target[mask], reduction="sum")
                count = count + mask.sum()
            else:
                logits = self.model(text, low[rows].long().to(device))
                total = total + F.cross_entropy(
                    logits.flatten(0, 1).float(), target.flatten(), reduction="sum"
                )
                count = count + target.numel()
        return total, count


def sr_samples(cfg: TrainingConfig, tensors: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """The super-resolution samples of a tokenised split: the images the recipes keep
    (`training_rows`) whose high-resolution render was tokenised (``high_index``).

    Returns:
        ``(records, positions)``, both (K,) long: each sample's record index in the split
        and its row in ``tensors["high"]``.
    """
    kept = torch.zeros(len(tensors["low"]), dtype=torch.bool)
    kept[training_rows(cfg, tensors)] = True
    high_index = tensors["high_index"].long()
    positions = kept[high_index].nonzero().flatten()
    return high_index[positions], positions


def _train_sr(
    cfg: TrainingConfig, kind: str, *, device: str | None, progress: bool, stop_after: int | None
) -> Path:
    rc = cfg.dsr if kind == "dsr" else cfg.itersr
    out = cfg.stage_dirs[kind]
    dev = default_device(device)
    tensors, texts = load_token_split(cfg.stage_dirs["tokenize"], "train")
    low_grid, high_grid = cfg.data.low_size // 8, cfg.data.high_size // 8
    # float32 master weights even when the CogLM comes from an fp16 weights folder
    base = load_coglm(cfg.coglm_folder, device=dev, dtype=torch.float32)
    torch.manual_seed(rc.seed)
    if kind == "dsr":
        # reference.md §4.5: the base is frozen (unless the recipe trains DSR's own copy)
        base.requires_grad_(cfg.dsr.train_base)
        sr_cfg = DSRConfig(
            text_slots=cfg.dsr.text_slots,
            low_grid=low_grid,
            high_grid=high_grid,
            cross_kernel=cfg.dsr.cross_kernel,
            local_kernel=cfg.dsr.local_kernel,
        )
        model: DirectSuperResolution | IterativeSuperResolution = DirectSuperResolution(
            base, sr_cfg
        )
        loss_module = SRLoss(model)
    else:
        it_cfg = ITERSRConfig(
            text_slots=cfg.itersr.text_slots,
            high_grid=high_grid,
            local_kernel=cfg.itersr.local_kernel,
        )
        model = IterativeSuperResolution(base, it_cfg)
        loss_module = SRLoss(model, cfg.itersr.mask_ratios)
    if rc.init == "start_from":  # continue the weights folder's model (base and mixins)
        given = getattr(CogView2Pipeline.from_pretrained(cfg.start_from, dtype=torch.float32), kind)
        if given is None:
            raise ValueError(f"[{kind}] init = 'start_from': {cfg.start_from} has no {kind} model")
        with torch.no_grad():
            base.load_state_dict(given.base.state_dict())
        model.load_mixin_state_dict({k: v.to(dev) for k, v in given.mixin_state_dict().items()})
        del given
    else:
        tile_extra_positions(base, model.extra_positions, low_grid, high_grid)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    records, positions = sr_samples(cfg, tensors)
    _log.info("%s: %.2fM trainable parameters, %d samples", kind, trainable / 1e6, len(records))
    units: list[nn.Module] = list(base.transformer.layers)
    if isinstance(model, DirectSuperResolution):  # its own FSDP units: outside the root's share
        plus = model.mixins["attention_plus"]
        units += [*plus.query_key_value, *plus.dense]
    wrapped = wrap_model(loss_module, rc, units)

    def step_fn(indices: list[int], step: int) -> tuple[Tensor, Tensor]:
        gens = [sample_generator(rc.seed, step, i) for i in indices]
        rows = records[indices]
        chosen = [sample_text(texts[r], g) for r, g in zip(rows.tolist(), gens, strict=True)]
        return wrapped(chosen, tensors["low"][rows], tensors["high"][positions[indices]], gens)

    history = run_loop(
        wrapped, len(records), step_fn, rc, out, desc=kind, progress=progress, stop_after=stop_after
    )
    done = bool(history) and history[-1]["step"] == rc.steps
    own_base = kind == "itersr" or cfg.dsr.train_base
    if done or (not history and (out / "checkpoint").exists()):
        if is_fsdp(wrapped):  # sharded parameters: gather them (every rank), write on rank 0
            state = full_model_state(wrapped)
            if is_main():
                save_sharded_sr_folder(model, state, out / FINAL, own_base=own_base)
        elif is_main():
            save_sr_folder(model, out / FINAL, own_base=own_base)
    barrier()
    return out / FINAL


def save_sr_folder(
    model: DirectSuperResolution | IterativeSuperResolution, folder: Path, *, own_base: bool
) -> None:
    """Write the model in the pipeline folder's per-model format (`save_pretrained`), with
    ``base/`` when its transformer was fine-tuned (ITERSR, and DSR with ``train_base``)."""
    model.save_pretrained(folder, shared_base=None if own_base else model.base)


def save_sharded_sr_folder(
    model: DirectSuperResolution | IterativeSuperResolution,
    state: dict[str, Tensor],
    folder: Path,
    *,
    own_base: bool,
) -> None:
    """`save_sr_folder` for a model trained with FSDP2, from `SRLoss`'s full state dict
    (``model.base.*``, ``model.mixins.*``; `coglm_core.distributed.full_model_state`)."""
    mixins = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.mixins.")}
    base = {k[len("model.base.") :]: v for k, v in state.items() if k.startswith("model.base.")}
    save_sr_parts(folder, model.config, mixins, base if own_base else None, model.base.config)


def dsr_recipe(
    cfg: TrainingConfig,
    *,
    device: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Fine-tune DSR's ``attention_plus`` and extra position table on the frozen CogLM.

    ``attention_plus`` starts as a copy of each layer's attention, the 60×60 position table as
    the 20×20 image rows tiled 3×3 (reference.md §4.5). Checkpoints in ``<workdir>/dsr/``.

    Returns:
        ``<workdir>/dsr/final`` (``sr_config.json`` + ``mixins.safetensors``).
    """
    return _train_sr(cfg, "dsr", device=device, progress=progress, stop_after=stop_after)


def itersr_recipe(
    cfg: TrainingConfig,
    *,
    device: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Fine-tune ITERSR (a copy of CogLM, all weights, + extra positions) by masked prediction.

    Returns:
        ``<workdir>/itersr/final`` (``sr_config.json``, ``mixins.safetensors``, ``base/``).
    """
    return _train_sr(cfg, "itersr", device=device, progress=progress, stop_after=stop_after)
