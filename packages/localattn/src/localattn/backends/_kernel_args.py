"""Shared plumbing of the op backends: argument normalisation, op registration, eager autograd."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

from localattn._na_validate import NAInputs
from localattn._validate import AttentionInputs


def stat_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation / statistics dtype: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def no_autocast(t: torch.Tensor) -> torch.autocast:
    """Autocast off on ``t``'s device: the impls compute in their inputs' dtypes (the public
    function already cast the inputs to the autocast dtype), so matmuls inside them must not
    be re-cast, in the forward or in a backward run under autocast."""
    return torch.autocast(t.device.type, enabled=False)


def op_args(
    inputs: AttentionInputs, extra_add: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(extra_k, extra_v, extra_add) with T = 0 tensors standing in for "no global tokens"."""
    q = inputs.q
    if inputs.extra_k is not None and inputs.extra_v is not None and extra_add is not None:
        return inputs.extra_k, inputs.extra_v, extra_add
    b, heads, _, _, d = q.shape
    empty = q.new_zeros((b, heads, 0, d))
    return empty, empty.clone(), q.new_zeros((b, heads, 0), dtype=stat_dtype(q.dtype))


def eager_autograd(
    forward_impl: Callable, backward_impl: Callable
) -> type[torch.autograd.Function]:
    """An autograd.Function over the same impls as a backend's custom ops.

    Eager calls use it: calling a ``torch.library.custom_op`` imports ``torch._dynamo`` on first
    use (seconds), which plain eager users should not pay. Under ``torch.compile`` backends call
    the registered custom ops instead, so graphs have no breaks.
    """

    class _LocalAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, extra_k, extra_v, extra_add, kh, kw, causal, scale):
            with no_autocast(q):
                out, lse = forward_impl(q, k, v, extra_k, extra_v, extra_add, kh, kw, causal, scale)
            ctx.save_for_backward(q, k, v, extra_k, extra_v, extra_add, out, lse)
            ctx.params = (kh, kw, causal, scale)
            return out, lse

        @staticmethod
        @once_differentiable
        def backward(ctx, dout, dlse):
            q, k, v, extra_k, extra_v, extra_add, out, lse = ctx.saved_tensors
            with no_autocast(q):
                grads = backward_impl(
                    dout.contiguous(), dlse.contiguous(), q, k, v, extra_k, extra_v, extra_add,
                    out, lse, *ctx.params,
                )  # fmt: skip
            return (*grads, None, None, None, None)

    return _LocalAttention


def register_ops(name: str, forward_impl: Callable, backward_impl: Callable) -> tuple:
    """Register ``localattn::{name}_forward`` / ``_backward`` custom ops over a backend's impls.

    Both get fake implementations; the forward op gets autograd through the backward op.
    Returns (forward_op, backward_op).
    """

    @torch.library.custom_op(f"localattn::{name}_forward", mutates_args=())
    def forward_op(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        extra_k: torch.Tensor,
        extra_v: torch.Tensor,
        extra_add: torch.Tensor,
        kh: int,
        kw: int,
        causal: bool,
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with no_autocast(q):
            return forward_impl(q, k, v, extra_k, extra_v, extra_add, kh, kw, causal, scale)

    @forward_op.register_fake
    def _(q, k, v, extra_k, extra_v, extra_add, kh, kw, causal, scale):
        return torch.empty_like(q), q.new_empty(q.shape[:4], dtype=stat_dtype(q.dtype))

    @torch.library.custom_op(f"localattn::{name}_backward", mutates_args=())
    def backward_op(
        dout: torch.Tensor,
        dlse: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        extra_k: torch.Tensor,
        extra_v: torch.Tensor,
        extra_add: torch.Tensor,
        out: torch.Tensor,
        lse: torch.Tensor,
        kh: int,
        kw: int,
        causal: bool,
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        with no_autocast(q):
            return backward_impl(
                dout, dlse, q, k, v, extra_k, extra_v, extra_add, out, lse, kh, kw, causal, scale
            )

    @backward_op.register_fake
    def _(dout, dlse, q, k, v, extra_k, extra_v, extra_add, out, lse, kh, kw, causal, scale):
        return tuple(torch.empty_like(x) for x in (q, k, v, extra_k, extra_v, extra_add))

    def setup_context(ctx, inputs, output):
        q, k, v, extra_k, extra_v, extra_add, kh, kw, causal, scale = inputs
        ctx.save_for_backward(q, k, v, extra_k, extra_v, extra_add, *output)
        ctx.params = (kh, kw, causal, scale)

    def backward(ctx, dout, dlse):
        q, k, v, extra_k, extra_v, extra_add, out, lse = ctx.saved_tensors
        dout = torch.zeros_like(out) if dout is None else dout.contiguous()
        dlse = torch.zeros_like(lse) if dlse is None else dlse.contiguous()
        grads = backward_op(dout, dlse, q, k, v, extra_k, extra_v, extra_add, out, lse, *ctx.params)
        return (*grads, None, None, None, None)

    forward_op.register_autograd(backward, setup_context=setup_context)
    return forward_op, backward_op


def run_op(
    forward_op: Callable,
    eager: type[torch.autograd.Function],
    inputs: AttentionInputs,
    extra_add: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A backend's ``forward``: the custom op under ``torch.compile``, the eager Function else."""
    ek, ev, ea = op_args(inputs, extra_add)
    win = inputs.window
    args = (inputs.q, inputs.k, inputs.v, ek, ev, ea, win.kh, win.kw, win.causal, inputs.scale)
    if torch.compiler.is_compiling():
        return forward_op(*args)
    return eager.apply(*args)


# ------------------------------------------------------------------ neighborhood attention ops
# q, k, v (B, *spatial, heads, D); extra_k/extra_v (B, n, heads, D), n = 0 for none;
# kernel_size, dilation, is_causal: one entry per spatial axis.


def na_extra(inputs: NAInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(extra_k, extra_v) with n = 0 tensors standing in for "no additional keys"."""
    if inputs.extra_k is not None and inputs.extra_v is not None:
        return inputs.extra_k, inputs.extra_v
    q = inputs.q
    empty = q.new_zeros((q.shape[0], 0, *q.shape[-2:]))
    return empty, empty.clone()


def na_eager_autograd(
    forward_impl: Callable, backward_impl: Callable
) -> type[torch.autograd.Function]:
    """The neighborhood ops' autograd.Function for eager calls (see :func:`eager_autograd`)."""

    class _NeighborhoodAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, extra_k, extra_v, kernel_size, dilation, is_causal, scale):
            params = (kernel_size, dilation, is_causal, scale)
            with no_autocast(q):
                out, lse = forward_impl(q, k, v, extra_k, extra_v, *params)
            ctx.save_for_backward(q, k, v, extra_k, extra_v, out, lse)
            ctx.params = params
            return out, lse

        @staticmethod
        @once_differentiable
        def backward(ctx, dout, dlse):
            q, k, v, extra_k, extra_v, out, lse = ctx.saved_tensors
            with no_autocast(q):
                grads = backward_impl(
                    dout.contiguous(), dlse.contiguous(), q, k, v, extra_k, extra_v, out, lse,
                    *ctx.params,
                )  # fmt: skip
            return (*grads, None, None, None, None)

    return _NeighborhoodAttention


def register_na_ops(name: str, forward_impl: Callable, backward_impl: Callable) -> tuple:
    """Register ``localattn::{name}_na_forward`` / ``_na_backward`` custom ops (with fakes and
    autograd) over a backend's neighborhood-attention impls. Returns (forward_op, backward_op)."""

    @torch.library.custom_op(f"localattn::{name}_na_forward", mutates_args=())
    def forward_op(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        extra_k: torch.Tensor,
        extra_v: torch.Tensor,
        kernel_size: list[int],
        dilation: list[int],
        is_causal: list[bool],
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with no_autocast(q):
            return forward_impl(q, k, v, extra_k, extra_v, kernel_size, dilation, is_causal, scale)

    @forward_op.register_fake
    def _(q, k, v, extra_k, extra_v, kernel_size, dilation, is_causal, scale):
        return torch.empty_like(q), q.new_empty(q.shape[:-1], dtype=stat_dtype(q.dtype))

    @torch.library.custom_op(f"localattn::{name}_na_backward", mutates_args=())
    def backward_op(
        dout: torch.Tensor,
        dlse: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        extra_k: torch.Tensor,
        extra_v: torch.Tensor,
        out: torch.Tensor,
        lse: torch.Tensor,
        kernel_size: list[int],
        dilation: list[int],
        is_causal: list[bool],
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        with no_autocast(q):
            return backward_impl(
                dout, dlse, q, k, v, extra_k, extra_v, out, lse,
                kernel_size, dilation, is_causal, scale,
            )  # fmt: skip

    @backward_op.register_fake
    def _(dout, dlse, q, k, v, extra_k, extra_v, out, lse, kernel_size, dilation, is_causal, scale):
        return tuple(torch.empty_like(x) for x in (q, k, v, extra_k, extra_v))

    def setup_context(ctx, inputs, output):
        q, k, v, extra_k, extra_v, *params = inputs
        ctx.save_for_backward(q, k, v, extra_k, extra_v, *output)
        ctx.params = tuple(params)

    def backward(ctx, dout, dlse):
        q, k, v, extra_k, extra_v, out, lse = ctx.saved_tensors
        dout = torch.zeros_like(out) if dout is None else dout.contiguous()
        dlse = torch.zeros_like(lse) if dlse is None else dlse.contiguous()
        grads = backward_op(dout, dlse, q, k, v, extra_k, extra_v, out, lse, *ctx.params)
        return (*grads, None, None, None, None)

    forward_op.register_autograd(backward, setup_context=setup_context)
    return forward_op, backward_op


def run_na_op(
    forward_op: Callable, eager: type[torch.autograd.Function], inputs: NAInputs
) -> tuple[torch.Tensor, torch.Tensor]:
    """A backend's ``na_forward``: the custom op under ``torch.compile``, the eager Function else."""
    ek, ev = na_extra(inputs)
    spec = inputs.spec
    args = (
        inputs.q, inputs.k, inputs.v, ek, ev,
        list(spec.kernel_size), list(spec.dilation), list(spec.is_causal), inputs.scale,
    )  # fmt: skip
    if torch.compiler.is_compiling():
        return forward_op(*args)
    return eager.apply(*args)
