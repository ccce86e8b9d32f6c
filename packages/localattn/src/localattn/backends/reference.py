"""Pure-PyTorch reference backend: tiled exact attention with a recomputing backward.

The query grid is cut into tiles (see ``localattn._tiling``); each tile's queries attend, in one
softmax, to the band of keys their windows can reach (masked to the exact window) plus the global
tokens. Score tensors exist only per chunk of tiles; the backward recomputes them from the saved
log-sum-exp, flash-attention style. Runs on any device, in float16/bfloat16/float32/float64
(half types are computed in float32).
"""

from __future__ import annotations

import torch

from localattn._na_validate import NAInputs
from localattn._tiling import (
    DEFAULT_TILING,
    TilePlan,
    TileTables,
    additive_mask,
    choose_plan,
    tile_tables,
)
from localattn._validate import AttentionInputs
from localattn.backends._kernel_args import (
    eager_autograd,
    register_ops,
    run_na_op,
    run_op,
    stat_dtype,
)
from localattn.backends._tiled import flat_grid as _flat
from localattn.backends._tiled import tiled_backward, tiled_forward
from localattn.backends.base import Backend
from localattn.backends.reference_na import EAGER_NA, reference_na_forward
from localattn.types import WindowSpec


def _tiles(
    q: torch.Tensor, k: torch.Tensor, kh: int, kw: int, causal: bool, t: int, dtype: torch.dtype
) -> tuple[TilePlan, TileTables, torch.Tensor]:
    """The tile plan, its index tables and its additive window mask (forward and backward alike)."""
    window = WindowSpec(kh, kw, causal)
    hw, khw = (q.shape[2], q.shape[3]), (k.shape[2], k.shape[3])
    plan = choose_plan(hw, khw, window, t, q.shape[-1])
    return plan, tile_tables(plan, q.device), additive_mask(plan, dtype, q.device)


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


def reference_forward_impl(q, k, v, extra_k, extra_v, extra_add, kh, kw, causal, scale):
    """Forward on plain tensors; see :class:`ReferenceBackend` for shapes."""
    cdt = stat_dtype(q.dtype)
    b, heads, h, w, d = q.shape
    _, tab, mask = _tiles(q, k, kh, kw, causal, extra_k.shape[2], cdt)
    out = q.new_empty(b, heads, h * w, d)
    lse = q.new_empty(b, heads, h * w, dtype=cdt)
    tiled_forward(
        _flat(q), _flat(k), _flat(v), extra_k.to(cdt), extra_v.to(cdt), extra_add.to(cdt),
        tab.q_index, tab.q_valid, tab.k_index, mask, scale, out, lse,
    )  # fmt: skip
    return out.view(b, heads, h, w, d), lse.view(b, heads, h, w)


def reference_backward_impl(
    dout, dlse, q, k, v, extra_k, extra_v, extra_add, out, lse, kh, kw, causal, scale
):
    """Gradients w.r.t. (q, k, v, extra_k, extra_v, extra_add), recomputing the scores."""
    cdt = stat_dtype(q.dtype)
    _, tab, mask = _tiles(q, k, kh, kw, causal, extra_k.shape[2], cdt)
    qf = _flat(q)
    dq = q.new_empty(qf.shape)  # rows written once each, straight from their tile
    dk, dv, dek, dev, dea = tiled_backward(
        _flat(dout), _flat(dlse), qf, _flat(k), _flat(v), _flat(out), _flat(lse),
        extra_k.to(cdt), extra_v.to(cdt), extra_add.to(cdt),
        tab.q_index, tab.q_valid, tab.k_index, mask, scale, dq,
    )  # fmt: skip
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
    SUPPORTS_NA = True

    def not_supported_reasons(self, inputs: AttentionInputs) -> list[str]:
        return [r for r in super().not_supported_reasons(inputs) if not r.startswith("device")]

    def na_not_supported_reasons(self, inputs: NAInputs) -> list[str]:
        return [r for r in super().na_not_supported_reasons(inputs) if not r.startswith("device")]

    def na_forward(self, inputs: NAInputs) -> tuple[torch.Tensor, torch.Tensor]:
        return run_na_op(reference_na_forward, EAGER_NA, inputs)

    def forward(
        self, inputs: AttentionInputs, extra_add: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return run_op(reference_forward, _EAGER, inputs, extra_add)
