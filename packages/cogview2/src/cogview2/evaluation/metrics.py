"""Evaluation metrics: PSNR, Fréchet distance of feature sets, retrieval accuracy."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["frechet_distance", "psnr", "retrieval_accuracy"]


def psnr(reference: Tensor, reconstruction: Tensor) -> Tensor:
    """Per-image PSNR in dB of images in [0, 1] (the reconstruction is clamped to [0, 1]).

    Args:
        reference: (N, C, H, W) float.
        reconstruction: (N, C, H, W) float, same shape.

    Returns:
        (N,) float64; identical images give ``inf``.
    """
    if reference.shape != reconstruction.shape or reference.dim() != 4:
        raise ValueError(
            f"need two (N, C, H, W) tensors of one shape, got {tuple(reference.shape)} and "
            f"{tuple(reconstruction.shape)}"
        )
    diff = reference.double() - reconstruction.double().clamp(0, 1)
    mse = diff.pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def frechet_distance(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

    ``|μa − μb|² + tr(Σa + Σb − 2 (Σa Σb)^½)`` in float64; the trace of the root is taken
    from the eigenvalues of ``Σa^½ Σb Σa^½`` (equal, and stable when Σ is singular).

    Args:
        a: (N, F) features, N >= 2.
        b: (M, F) features, M >= 2.

    Returns:
        The distance (>= 0 up to rounding).
    """
    x, y = (np.asarray(torch.as_tensor(t).double().cpu()) for t in (a, b))
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(
            f"need (N, F) and (M, F) features with N, M >= 2, got {x.shape} and {y.shape}"
        )
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    # tr (Σx Σy)^½ = Σ √λ of the symmetric PSD matrix Σx^½ Σy Σx^½ (stable for singular Σ)
    sx = _psd_sqrt(cov_x)
    eig = np.linalg.eigvalsh(sx @ cov_y @ sx)
    trace_root = float(np.sqrt(np.clip(eig, 0, None)).sum())
    value = float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x + cov_y) - 2 * trace_root)
    return max(value, 0.0)


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def retrieval_accuracy(scores: Tensor, targets: Tensor) -> float:
    """Fraction of rows whose target column strictly beats every other column.

    Args:
        scores: (N, C) float, higher is better (e.g. caption log-likelihoods).
        targets: (N,) long column of the right candidate.

    Returns:
        Accuracy in [0, 1] (ties count as wrong).
    """
    if scores.dim() != 2 or targets.shape != (scores.shape[0],) or scores.shape[0] == 0:
        raise ValueError(
            f"need (N, C) scores and (N,) targets, N >= 1; got {tuple(scores.shape)}, "
            f"{tuple(targets.shape)}"
        )
    right = scores.gather(1, targets[:, None].long())
    others = scores.clone()
    others.scatter_(1, targets[:, None].long(), float("-inf"))
    return float((right[:, 0] > others.max(1).values).double().mean())
