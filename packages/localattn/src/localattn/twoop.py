"""The two-op form of the released checkpoints: ``similarity_2d`` then ``weighting_2d``.

These reproduce SAT's ``f_similar`` / ``f_weighting`` (Image-Local-Attention) bit-for-bit in
semantics: channel-first layout, key-batch broadcast, out-of-grid scores of exactly -10000 and
out-of-grid slots skipped when weighting. Pure PyTorch (one shifted view per window slot), so
autograd provides the backward; use :func:`localattn.local_attention_2d` for speed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from localattn._validate import SUPPORTED_DTYPES, check_grids
from localattn.types import KernelSize, WindowSpec

OUT_OF_GRID_SCORE = -10000.0
"""Score the original kernel writes for window slots outside the key grid."""


def _check4(name: str, t: torch.Tensor, layout: str) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a 4-dim tensor {layout}, got {shape}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); every dim must be >= 1")
    if t.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"{name}.dtype={t.dtype} is not supported; use one of {SUPPORTED_DTYPES}")


def _check_pair(
    x: torch.Tensor, xname: str, kv: torch.Tensor, kvname: str, x_hw: tuple[int, int]
) -> int:
    """Check batch broadcast, dtype and device; return g = N / N'."""
    if kv.dtype != x.dtype or kv.device != x.device:
        raise ValueError(
            f"{kvname} ({kv.dtype}, {kv.device}) must match {xname} ({x.dtype}, {x.device})"
        )
    n, nk = x.shape[0], kv.shape[0]
    if n % nk:
        raise ValueError(f"{xname} batch {n} must be a multiple of {kvname} batch {nk}")
    check_grids(x_hw, (kv.shape[2], kv.shape[3]), kvname)
    return n // nk


def _shifted(x: torch.Tensor, window: WindowSpec, dy: int, dx: int) -> torch.Tensor:
    """x (N', C, H', W') shifted so that [.., y, x] holds x[.., y+dy, x+dx] (zeros outside)."""
    hk, wk = x.shape[2], x.shape[3]
    rh, rw = window.radius_h, window.radius_w
    padded = F.pad(x, (rw, window.kw - 1 - rw, rh, window.kh - 1 - rh))
    return padded[:, :, rh + dy : rh + dy + hk, rw + dx : rw + dx + wk]


def _in_grid(hk: int, wk: int, dy: int, dx: int, device: torch.device) -> torch.Tensor:
    """(H', W') bool: whether the slot offset (dy, dx) stays inside the key grid."""
    ys = torch.arange(hk, device=device) + dy
    xs = torch.arange(wk, device=device) + dx
    return ((ys >= 0) & (ys < hk))[:, None] & ((xs >= 0) & (xs < wk))[None, :]


def similarity_2d(
    q: torch.Tensor, k: torch.Tensor, kernel_size: KernelSize, *, causal: bool = False
) -> torch.Tensor:
    """Window scores ``S[n, i, j, p] = Σ_c q[n, c, i, j] · k[n // g, c, y_p, x_p]`` (SAT f_similar).

    The key of slot p for query (i, j) is ``(i // ah + dy_p, j // aw + dx_p)`` with
    ``(dy_p, dx_p) = (p // kW - kH // 2, p % kW - kW // 2)``; slots outside the key grid score
    exactly -10000 (and get no gradient). Unscaled: callers pre-divide q.

    Args:
        q: (N, C, H, W) queries, channel-first.
        k: (N', C, H', W') keys, N % N' == 0, H % H' == 0, W % W' == 0.
        kernel_size: ``k`` or ``(kH, kW)``.
        causal: Keep the first ``kH*kW // 2 + 1`` slots (odd sizes only).

    Returns:
        (N, H, W, P) scores in q's dtype (accumulated in float32 for half types), P = kH·kW
        or ``kH*kW // 2 + 1`` when causal.
    """
    window = WindowSpec.from_kernel_size(kernel_size, causal)
    _check4("q", q, "(N, C, H, W)")
    _check4("k", k, "(N', C, H', W')")
    if k.shape[1] != q.shape[1]:
        raise ValueError(f"k channels {k.shape[1]} must equal q channels {q.shape[1]}")
    n, c, h, w = q.shape
    g = _check_pair(q, "q", k, "k", (h, w))
    nk, hk, wk = k.shape[0], k.shape[2], k.shape[3]
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    # (N', g, C, H', ah, W', aw): each key-grid cell owns an ah×aw block of queries
    qg = q.to(acc).reshape(nk, g, c, hk, h // hk, wk, w // wk)
    scores = []
    for dy, dx in window.offsets():
        ks = _shifted(k.to(acc), window, dy, dx)[:, None, :, :, None, :, None]
        s = (qg * ks).sum(2)  # (N', g, H', ah, W', aw)
        inside = _in_grid(hk, wk, dy, dx, q.device)[:, None, :, None]
        scores.append(torch.where(inside, s, OUT_OF_GRID_SCORE).reshape(n, h, w))
    return torch.stack(scores, dim=-1).to(q.dtype)


def weighting_2d(
    v: torch.Tensor, probs: torch.Tensor, kernel_size: KernelSize, *, causal: bool = False
) -> torch.Tensor:
    """Weighted window sum ``O[n, c, i, j] = Σ_p A[n, i, j, p] · v[n // g, c, y_p, x_p]`` (f_weighting).

    Slots outside the key grid are skipped: they contribute nothing even where ``probs`` is
    non-zero, and receive no gradient.

    Args:
        v: (N', C, H', W') values.
        probs: (N, H, W, P) weights (usually softmax probabilities), N % N' == 0.
        kernel_size: ``k`` or ``(kH, kW)``.
        causal: Raster-causal half window (P = kH*kW // 2 + 1).

    Returns:
        (N, C, H, W) in v's dtype (accumulated in float32 for half types).
    """
    window = WindowSpec.from_kernel_size(kernel_size, causal)
    _check4("v", v, "(N', C, H', W')")
    if not isinstance(probs, torch.Tensor) or probs.dim() != 4:
        raise ValueError("probs must be a 4-dim tensor (N, H, W, P)")
    if probs.shape[3] != window.num_slots:
        raise ValueError(
            f"probs has {probs.shape[3]} slots but the window has P={window.num_slots}"
        )
    n, h, w, _ = probs.shape
    g = _check_pair(probs, "probs", v, "v", (h, w))
    nk, c, hk, wk = v.shape
    acc = torch.float64 if v.dtype == torch.float64 else torch.float32
    # (N', g, 1, H', ah, W', aw, P)
    a = probs.to(acc).reshape(nk, g, 1, hk, h // hk, wk, w // wk, window.num_slots)
    out = torch.zeros((nk, g, c, hk, h // hk, wk, w // wk), dtype=acc, device=v.device)
    for p, (dy, dx) in enumerate(window.offsets()):
        vs = _shifted(v.to(acc), window, dy, dx)[:, None, :, :, None, :, None]
        inside = _in_grid(hk, wk, dy, dx, v.device)[:, None, :, None]
        out = out + torch.where(inside, a[..., p], 0.0) * vs
    return out.reshape(n, c, h, w).to(v.dtype)
