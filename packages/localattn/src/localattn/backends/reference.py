"""Pure-PyTorch reference backend: tiled exact attention with a recomputing backward.

The query grid is cut into tiles (see ``localattn._tiling``); each tile's queries attend, in one
softmax, to the band of keys their windows can reach (masked to the exact window) plus the global
tokens. Score tensors exist only per chunk of tiles; the backward recomputes them from the saved
log-sum-exp, flash-attention style. Runs on any device, in float16/bfloat16/float32/float64
(half types are computed in float32).
"""

from __future__ import annotations

import torch

from localattn._tiling import (
    DEFAULT_TILING,
    TilePlan,
    TileTables,
    additive_mask,
    choose_plan,
    tile_tables,
)
from localattn._validate import AttentionInputs
from localattn.backends._kernel_args import eager_autograd, register_ops, run_op, stat_dtype
from localattn.backends.base import Backend
from localattn.types import WindowSpec


def _tiles(
    q: torch.Tensor, k: torch.Tensor, kh: int, kw: int, causal: bool, t: int, dtype: torch.dtype
) -> tuple[TilePlan, TileTables, torch.Tensor]:
    """The tile plan, its index tables and its additive window mask (forward and backward alike)."""
    window = WindowSpec(kh, kw, causal)
    hw, khw = (q.shape[2], q.shape[3]), (k.shape[2], k.shape[3])
    plan = choose_plan(hw, khw, window, t, q.shape[-1])
    return plan, tile_tables(plan, q.device), additive_mask(plan, dtype, q.device)


def _chunks(
    plan: TilePlan, batch_heads: int, t: int, d: int, device: torch.device
) -> list[tuple[int, int]]:
    """Tile ranges whose temporaries (scores, probabilities, gathered q/k/v) fit the budget."""
    qt, kt = plan.queries_per_tile, plan.keys_per_tile
    per_tile = batch_heads * (2 * qt * (kt + t) + 2 * kt * d + 2 * qt * d)
    budget = DEFAULT_TILING.chunk_budget(batch_heads * plan.h * plan.w * d, device)
    step = max(1, budget // max(per_tile, 1))
    return [(s, min(s + step, plan.num_tiles)) for s in range(0, plan.num_tiles, step)]


def workspace_bytes(
    batch: int,
    heads: int,
    height: int,
    width: int,
    head_dim: int,
    device: torch.device | str = "cpu",
) -> int:
    """Bytes of the reference backend's temporaries for one call on a (height, width) query
    grid: two float32 blocks of its chunk budget, which scales with the output's
    ``batch·heads·height·width·head_dim`` elements (``TilingConfig.chunk_budget``).

    For memory planning (cogview2's `estimate_memory`); the output itself is not included.

    Raises:
        ValueError: a size that is not a positive int.
    """
    sizes = {"batch": batch, "heads": heads, "height": height, "width": width, "head_dim": head_dim}
    bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise ValueError(f"workspace_bytes needs positive int sizes, got {bad}")
    budget = DEFAULT_TILING.chunk_budget(
        batch * heads * height * width * head_dim, torch.device(device)
    )
    return 2 * budget * 4


def _gather(x: torch.Tensor, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x (B, h, N, D) gathered at index (n, m) -> (B, h, n, m, D) in ``dtype``."""
    b, h, _, d = x.shape
    return x.index_select(2, index.reshape(-1)).to(dtype).view(b, h, *index.shape, d)


def _flat(x: torch.Tensor) -> torch.Tensor:
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


def reference_forward_impl(q, k, v, extra_k, extra_v, extra_add, kh, kw, causal, scale):
    """Forward on plain tensors; see :class:`ReferenceBackend` for shapes."""
    cdt = stat_dtype(q.dtype)
    b, heads, h, w, d = q.shape
    t = extra_k.shape[2]
    plan, tab, mask = _tiles(q, k, kh, kw, causal, t, cdt)
    qf, kf, vf = _flat(q), _flat(k), _flat(v)
    ek, ev, ea = extra_k.to(cdt), extra_v.to(cdt), extra_add.to(cdt)
    # results go straight into their final rows: the workspace is one chunk's temporaries
    out = q.new_empty(b, heads, h * w, d)
    lse = q.new_empty(b, heads, h * w, dtype=cdt)
    for s0, s1 in _chunks(plan, b * heads, t, d, q.device):
        qi, qv = tab.q_index[s0:s1], tab.q_valid[s0:s1]
        qt = _gather(qf, qi, cdt).mul_(scale)
        kt = _gather(kf, tab.k_index[s0:s1], cdt)
        s_loc, s_ext, m = _scores(qt, kt, ek, ea, mask[s0:s1])
        del qt, kt
        p_loc = s_loc.sub_(m[..., None]).exp_()
        p_ext = s_ext.sub_(m[..., None]).exp_()
        denom = p_loc.sum(-1) + p_ext.sum(-1)
        o = torch.matmul(p_loc, _gather(vf, tab.k_index[s0:s1], cdt))
        del p_loc
        o.add_(torch.matmul(p_ext, ev[:, :, None])).div_(denom[..., None])
        _scatter_rows(out, qi, qv, o)
        _scatter_rows(lse, qi, qv, denom.log_().add_(m))
    return out.view(b, heads, h, w, d), lse.view(b, heads, h, w)


def reference_backward_impl(
    dout, dlse, q, k, v, extra_k, extra_v, extra_add, out, lse, kh, kw, causal, scale
):
    """Gradients w.r.t. (q, k, v, extra_k, extra_v, extra_add), recomputing the scores."""
    cdt = stat_dtype(q.dtype)
    b, heads, _h, _w, d = q.shape
    t = extra_k.shape[2]
    plan, tab, mask = _tiles(q, k, kh, kw, causal, t, cdt)
    qf, kf, vf = _flat(q), _flat(k), _flat(v)
    lsef, dlsef = _flat(lse)[..., None], _flat(dlse)[..., None]
    valid = tab.q_valid[..., None].to(cdt)
    dof, of = _flat(dout), _flat(out)
    ek, ev, ea = extra_k.to(cdt), extra_v.to(cdt), extra_add.to(cdt)
    ekt, evt = ek[:, :, None], ev[:, :, None]  # (B, h, 1, T, D)
    dq = q.new_empty(qf.shape)  # rows written once each, straight from their tile
    dk = torch.zeros(kf.shape, dtype=cdt, device=q.device)
    dv = torch.zeros(vf.shape, dtype=cdt, device=q.device)
    dek = torch.zeros(ek.shape, dtype=cdt, device=q.device)
    dev = torch.zeros(ev.shape, dtype=cdt, device=q.device)
    dea = torch.zeros(ea.shape, dtype=cdt, device=q.device)
    for s0, s1 in _chunks(plan, b * heads, t, d, q.device):
        qi, ki = tab.q_index[s0:s1], tab.k_index[s0:s1]
        qt = _gather(qf, qi, cdt).mul_(scale)
        kt, vt = _gather(kf, ki, cdt), _gather(vf, ki, cdt)
        dot = _gather(dof, qi, cdt).mul_(valid[s0:s1])  # padding rows get no gradient
        s_loc, s_ext, _ = _scores(qt, kt, ek, ea, mask[s0:s1])
        row_lse = _gather(lsef, qi, cdt)
        # delta' = rowsum(dO * O) - dlse folds the lse gradient into the softmax backward;
        # zero on padding rows, so that they get ds = 0
        row_delta = (dot * _gather(of, qi, cdt)).sum(-1, keepdim=True)
        row_delta.sub_(_gather(dlsef, qi, cdt)).mul_(valid[s0:s1])
        p_loc = s_loc.sub_(row_lse).exp_()
        p_ext = s_ext.sub_(row_lse).exp_()
        ds_loc = torch.matmul(dot, vt.transpose(-1, -2)).sub_(row_delta).mul_(p_loc)
        ds_ext = torch.matmul(dot, evt.transpose(-1, -2)).sub_(row_delta).mul_(p_ext)
        dqt = torch.matmul(ds_loc, kt).add_(torch.matmul(ds_ext, ekt)).mul_(scale)
        _scatter_rows(dq, qi, tab.q_valid[s0:s1], dqt)
        flat_ki = ki.reshape(-1)
        dk.index_add_(2, flat_ki, torch.matmul(ds_loc.transpose(-1, -2), qt).flatten(2, 3))
        dv.index_add_(2, flat_ki, torch.matmul(p_loc.transpose(-1, -2), dot).flatten(2, 3))
        dek += torch.matmul(ds_ext.transpose(-1, -2), qt).sum(2)
        dev += torch.matmul(p_ext.transpose(-1, -2), dot).sum(2)
        dea += ds_ext.sum((2, 3))
    return (
        dq.view(q.shape),
        dk.view(k.shape).to(k.dtype),
        dv.view(v.shape).to(v.dtype),
        dek.to(extra_k.dtype),
        dev.to(extra_v.dtype),
        dea.to(extra_add.dtype),
    )


reference_forward, reference_backward = register_ops(
    "reference", reference_forward_impl, reference_backward_impl
)
_EAGER = eager_autograd(reference_forward_impl, reference_backward_impl)


class ReferenceBackend(Backend):
    """Pure PyTorch; every device and dtype; forward and backward; the specification."""

    NAME = "reference"
    DESCRIPTION = "pure PyTorch, tiled exact attention with recomputing backward (any device)"
    SUPPORTED_DEVICES = ("cpu", "cuda", "mps", "xpu", "meta")
    SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

    def not_supported_reasons(self, inputs: AttentionInputs) -> list[str]:
        reasons = [r for r in super().not_supported_reasons(inputs) if not r.startswith("device")]
        return reasons

    def forward(
        self, inputs: AttentionInputs, extra_add: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return run_op(reference_forward, _EAGER, inputs, extra_add)
