"""The CogLM loss (paper eq. 2) and per-modality loss logging (reference.md §1.3, §8.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import CogLMConfig


def next_token_labels(input_ids: Tensor, fill: int = 0) -> Tensor:
    """Labels for next-token prediction: ``labels[..., i] = input_ids[..., i + 1]``.

    The last position gets ``fill`` (it is never in a loss mask).
    """
    labels = torch.full_like(input_ids, fill)
    labels[..., :-1] = input_ids[..., 1:]
    return labels


def masked_token_losses(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-position cross-entropy in float32 (float64 for float64 logits).

    Args:
        logits: (B, L, V).
        labels: (B, L) long in ``[0, V)``.

    Returns:
        (B, L) float32.
    """
    b, seq, v = logits.shape
    if labels.shape != (b, seq):
        raise ValueError(f"labels {tuple(labels.shape)} must be {(b, seq)}")
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    ce = F.cross_entropy(logits.reshape(b * seq, v), labels.reshape(-1), reduction="none")
    return ce.view(b, seq)


def coglm_loss(
    logits: Tensor, labels: Tensor, loss_mask: Tensor, *, normalizer: Tensor | float | None = None
) -> Tensor:
    """Paper eq. (2): mean next-token cross-entropy over the positions in ``loss_mask``.

    ``Σ(ce · mask) / Σ mask`` over the whole batch (not per sample), as the release.

    Args:
        logits: (B, L, V).
        labels: (B, L) long, the token each position predicts.
        loss_mask: (B, L) bool or 0/1 float; 1 = this prediction counts.
        normalizer: divide by this instead of ``Σ mask`` (data-parallel training passes the
            global count so that the gradient equals the single-process one).

    Returns:
        scalar float32.
    """
    if loss_mask.shape != labels.shape:
        raise ValueError(
            f"loss_mask {tuple(loss_mask.shape)} must match labels {tuple(labels.shape)}"
        )
    per_token = masked_token_losses(logits, labels.masked_fill(~loss_mask.bool(), 0))
    mask = loss_mask.to(per_token.dtype)
    total = (per_token * mask).sum()
    denom = mask.sum() if normalizer is None else normalizer
    return total / torch.as_tensor(denom, dtype=total.dtype, device=total.device).clamp_min(1)


def modality_masks(labels: Tensor, config: CogLMConfig) -> dict[str, Tensor]:
    """Boolean masks of the target modality (ranges from the config, §1.3).

    Returns:
        ``{"image": labels < num_image_tokens, "english": in english_id_range,
        "chinese": in chinese_id_range}``, each like ``labels``.
    """
    en_lo, en_hi = config.english_id_range
    zh_lo, zh_hi = config.chinese_id_range
    return {
        "image": labels < config.num_image_tokens,
        "english": (labels >= en_lo) & (labels < en_hi),
        "chinese": (labels >= zh_lo) & (labels < zh_hi),
    }


@torch.no_grad()
def modality_losses(
    token_losses: Tensor, labels: Tensor, loss_mask: Tensor, config: CogLMConfig
) -> dict[str, tuple[float, int]]:
    """Sum of loss and count of predictions per modality, for logging.

    Args:
        token_losses: (B, L) per-position cross-entropy (`masked_token_losses`).
        labels: (B, L).
        loss_mask: (B, L).

    Returns:
        ``{modality: (loss_sum, count)}`` (divide to get the mean; sums add across ranks).
    """
    out = {}
    counted = loss_mask.bool()
    for name, sel in modality_masks(labels, config).items():
        sel = sel & counted
        out[name] = (float(token_losses.float()[sel].sum()), int(sel.sum()))
    return out
