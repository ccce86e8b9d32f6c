"""Neighborhood attention on the reference backend: the tiled loops of ``_tiled`` over the
neighborhood tile tables (``localattn._na_tiling``), forward and recomputing backward.

Tensors stay in NATTEN's layout (B, *spatial, heads, D): the loops read and write them through
(B, heads, N, D) strided views, so no transposed copy of q, k, v, out or the gradients is made.
"""

from __future__ import annotations

import torch

from localattn._na_tiling import NASpec, choose_tile, na_additive_mask, na_tables
from localattn.backends._kernel_args import na_eager_autograd, register_na_ops, stat_dtype
from localattn.backends._tiled import tiled_backward, tiled_forward


def heads_view(x: torch.Tensor) -> torch.Tensor:
    """(B, *spatial, heads, D) -> (B, heads, N, D) view (strided, no copy)."""
    return x.reshape(x.shape[0], -1, x.shape[-2], x.shape[-1]).transpose(1, 2)


def lse_view(x: torch.Tensor) -> torch.Tensor:
    """(B, *spatial, heads) -> (B, heads, N) view (strided, no copy)."""
    return x.reshape(x.shape[0], -1, x.shape[-1]).transpose(1, 2)


def _problem(q, kernel_size, dilation, is_causal, dtype):
    spec = NASpec(tuple(q.shape[1:-2]), tuple(kernel_size), tuple(dilation), tuple(is_causal))
    tile = choose_tile(spec, q.shape[-1])
    return na_tables(spec, tile, q.device), na_additive_mask(spec, tile, dtype, q.device)


def _extras(extra_k, extra_v, cdt):
    ek, ev = extra_k.transpose(1, 2).to(cdt), extra_v.transpose(1, 2).to(cdt)  # (B, h, n, D)
    return ek, ev, ek.new_zeros(ek.shape[:3])


def na_reference_forward_impl(q, k, v, extra_k, extra_v, kernel_size, dilation, is_causal, scale):
    """(out (B, *spatial, h, D), lse (B, *spatial, h)) of neighborhood attention."""
    cdt = stat_dtype(q.dtype)
    tab, mask = _problem(q, kernel_size, dilation, is_causal, cdt)
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    lse = q.new_empty(q.shape[:-1], dtype=cdt)
    ek, ev, ea = _extras(extra_k, extra_v, cdt)
    tiled_forward(
        heads_view(q), heads_view(k), heads_view(v), ek, ev, ea,
        tab.q_index, tab.q_valid, tab.k_index, mask, scale,
        heads_view(out), lse_view(lse),
    )  # fmt: skip
    return out, lse


def na_reference_backward_impl(
    dout, dlse, q, k, v, extra_k, extra_v, out, lse, kernel_size, dilation, is_causal, scale
):
    """Gradients w.r.t. (q, k, v, extra_k, extra_v), recomputing the scores."""
    cdt = stat_dtype(q.dtype)
    tab, mask = _problem(q, kernel_size, dilation, is_causal, cdt)
    ek, ev, ea = _extras(extra_k, extra_v, cdt)

    dq = torch.empty_like(q, memory_format=torch.contiguous_format)
    dk, dv, dek, dev, _ = tiled_backward(
        heads_view(dout), lse_view(dlse), heads_view(q), heads_view(k), heads_view(v),
        heads_view(out), lse_view(lse), ek, ev, ea,
        tab.q_index, tab.q_valid, tab.k_index, mask, scale, heads_view(dq),
    )  # fmt: skip

    def back(g, like):  # (B, h, N, D) -> like's (B, *spatial, h, D) layout and dtype
        return g.transpose(1, 2).reshape(like.shape).to(like.dtype)

    return dq, back(dk, k), back(dv, v), back(dek, extra_k), back(dev, extra_v)


reference_na_forward, reference_na_backward = register_na_ops(
    "reference", na_reference_forward_impl, na_reference_backward_impl
)
EAGER_NA = na_eager_autograd(na_reference_forward_impl, na_reference_backward_impl)
