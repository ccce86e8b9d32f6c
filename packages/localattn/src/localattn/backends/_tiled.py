"""Exact attention of query tiles over their key bands, shared by every tiled problem.

A problem (CogView2 windows in ``localattn._tiling``, neighborhoods in ``localattn._na_tiling``)
is described by index tables: each tile's queries, the band of keys they can reach, and an
additive mask of the attended (query, band key) pairs. The loops below gather tiles chunk by chunk
(the workspace scales with the output, flash-attention style), run one softmax over the band and
the global tokens, and write rows straight into the outputs; the backward recomputes the scores
from the saved log-sum-exp.
"""

from __future__ import annotations

import torch

from localattn._tiling import DEFAULT_TILING


def _chunks(q_index: torch.Tensor, kt: int, qf: torch.Tensor, t: int) -> list[tuple[int, int]]:
    """Tile ranges whose temporaries (scores, probabilities, gathered q/k/v) fit the budget,
    which scales with the output's size ``qf.numel()`` (B·h·N·D)."""
    num_tiles, qt = q_index.shape
    batch_heads, d = qf.shape[0] * qf.shape[1], qf.shape[-1]
    per_tile = batch_heads * (2 * qt * (kt + t) + 2 * kt * d + 2 * qt * d)
    budget = DEFAULT_TILING.chunk_budget(qf.numel(), qf.device)
    step = max(1, budget // max(per_tile, 1))
    return [(s, min(s + step, num_tiles)) for s in range(0, num_tiles, step)]


def _gather(x: torch.Tensor, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x (B, h, N, D) gathered at index (n, m) -> (B, h, n, m, D) in ``dtype``."""
    b, h, _, d = x.shape
    return x.index_select(2, index.reshape(-1)).to(dtype).view(b, h, *index.shape, d)


def flat_grid(x: torch.Tensor) -> torch.Tensor:
    """(B, h, H, W, ...) -> (B, h, H*W, ...)."""
    return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3], *x.shape[4:])


def _scores(qt, kt, ek, extra_add, mask):
    """Scores of scaled query tiles (B,h,n,Qt,D) vs their band (B,h,n,Kt,D) and the globals.

    Returns (local (B,h,n,Qt,Kt), extra (B,h,n,Qt,T), row max (B,h,n,Qt)).
    """
    s_loc = torch.matmul(qt, kt.transpose(-1, -2)).add_(mask)
    s_ext = torch.matmul(qt, ek[:, :, None].transpose(-1, -2)).add_(extra_add[:, :, None, None])
    m = s_loc.amax(-1)
    if s_ext.shape[-1]:
        m = torch.maximum(m, s_ext.amax(-1))
    return s_loc, s_ext, m


def _scatter_rows(dst: torch.Tensor, index: torch.Tensor, valid: torch.Tensor, rows: torch.Tensor):
    """Write tile rows (B, h, n, Qt, ...) into ``dst`` (B, h, H*W, ...) at ``index`` (n, Qt),
    skipping the padding slots (``valid`` False); no full-size temporary is made."""
    rows = rows.flatten(2, 3).to(dst.dtype)
    index, valid = index.reshape(-1), valid.reshape(-1)
    if not bool(valid.all()):
        keep = valid.nonzero().squeeze(1)
        index, rows = index[keep], rows.index_select(2, keep)
    dst.index_copy_(2, index, rows)


def tiled_forward(qf, kf, vf, ek, ev, ea, q_index, q_valid, k_index, mask, scale, out, lse):
    """Exact attention of tiled queries over their key bands (masked) plus the global tokens.

    Shared by every tiled problem (CogView2 windows, neighborhood attention): only the tables
    differ. ``qf`` (B, h, N, D), ``kf``/``vf`` (B, h, M, D) may be strided views; ``ek``/``ev``
    (B, h, T, D) and ``ea`` (B, h, T) are in the compute dtype. ``q_index``/``q_valid`` (tiles, Qt),
    ``k_index`` (tiles, Kt), ``mask`` (tiles, Qt, Kt) additive. Rows go straight into ``out``
    (B, h, N, D) and ``lse`` (B, h, N), which may be strided views too; the workspace is one
    chunk's temporaries.
    """
    cdt = ea.dtype
    for s0, s1 in _chunks(q_index, k_index.shape[1], qf, ek.shape[2]):
        qi, qv = q_index[s0:s1], q_valid[s0:s1]
        q_t = _gather(qf, qi, cdt).mul_(scale)
        k_t = _gather(kf, k_index[s0:s1], cdt)
        s_loc, s_ext, m = _scores(q_t, k_t, ek, ea, mask[s0:s1])
        del q_t, k_t
        p_loc = s_loc.sub_(m[..., None]).exp_()
        p_ext = s_ext.sub_(m[..., None]).exp_()
        denom = p_loc.sum(-1) + p_ext.sum(-1)
        o = torch.matmul(p_loc, _gather(vf, k_index[s0:s1], cdt))
        del p_loc
        o.add_(torch.matmul(p_ext, ev[:, :, None])).div_(denom[..., None])
        _scatter_rows(out, qi, qv, o)
        _scatter_rows(lse, qi, qv, denom.log_().add_(m))


def tiled_backward(
    dof, dlsef, qf, kf, vf, of, lsef, ek, ev, ea, q_index, q_valid, k_index, mask, scale, dq
):
    """Gradients of :func:`tiled_forward`, recomputing the scores from the saved lse.

    ``dof``/``of`` (B, h, N, D) and ``dlsef``/``lsef`` (B, h, N) may be strided views; ``dq``
    (B, h, N, D) is written row by row (each row once). Returns float32/64 (dk, dv) shaped like
    ``kf`` and (dek, dev, dea) shaped like ``ek``, ``ev``, ``ea``.
    """
    cdt = ea.dtype
    valid = q_valid[..., None].to(cdt)
    lsef, dlsef = lsef[..., None], dlsef[..., None]
    ekt, evt = ek[:, :, None], ev[:, :, None]  # (B, h, 1, T, D)
    dk = torch.zeros(kf.shape, dtype=cdt, device=qf.device)
    dv = torch.zeros(vf.shape, dtype=cdt, device=qf.device)
    dek, dev, dea = torch.zeros_like(ek), torch.zeros_like(ev), torch.zeros_like(ea)
    for s0, s1 in _chunks(q_index, k_index.shape[1], qf, ek.shape[2]):
        qi, ki = q_index[s0:s1], k_index[s0:s1]
        q_t = _gather(qf, qi, cdt).mul_(scale)
        k_t, v_t = _gather(kf, ki, cdt), _gather(vf, ki, cdt)
        dot = _gather(dof, qi, cdt).mul_(valid[s0:s1])  # padding rows get no gradient
        s_loc, s_ext, _ = _scores(q_t, k_t, ek, ea, mask[s0:s1])
        row_lse = _gather(lsef, qi, cdt)
        # delta' = rowsum(dO * O) - dlse folds the lse gradient into the softmax backward;
        # zero on padding rows, so that they get ds = 0
        row_delta = (dot * _gather(of, qi, cdt)).sum(-1, keepdim=True)
        row_delta.sub_(_gather(dlsef, qi, cdt)).mul_(valid[s0:s1])
        p_loc = s_loc.sub_(row_lse).exp_()
        p_ext = s_ext.sub_(row_lse).exp_()
        ds_loc = torch.matmul(dot, v_t.transpose(-1, -2)).sub_(row_delta).mul_(p_loc)
        ds_ext = torch.matmul(dot, evt.transpose(-1, -2)).sub_(row_delta).mul_(p_ext)
        dqt = torch.matmul(ds_loc, k_t).add_(torch.matmul(ds_ext, ekt)).mul_(scale)
        _scatter_rows(dq, qi, q_valid[s0:s1], dqt)
        flat_ki = ki.reshape(-1)
        dk.index_add_(2, flat_ki, torch.matmul(ds_loc.transpose(-1, -2), q_t).flatten(2, 3))
        dv.index_add_(2, flat_ki, torch.matmul(p_loc.transpose(-1, -2), dot).flatten(2, 3))
        dek += torch.matmul(ds_ext.transpose(-1, -2), q_t).sum(2)
        dev += torch.matmul(p_ext.transpose(-1, -2), dot).sum(2)
        dea += ds_ext.sum((2, 3))
    return dk, dv, dek, dev, dea
