"""Shared plumbing of the op backends: argument normalisation and the eager autograd wrapper."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

from localattn._validate import AttentionInputs


def stat_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation / statistics dtype: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


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
            out, lse = forward_impl(q, k, v, extra_k, extra_v, extra_add, kh, kw, causal, scale)
            ctx.save_for_backward(q, k, v, extra_k, extra_v, extra_add, out, lse)
            ctx.params = (kh, kw, causal, scale)
            return out, lse

        @staticmethod
        @once_differentiable
        def backward(ctx, dout, dlse):
            q, k, v, extra_k, extra_v, extra_add, out, lse = ctx.saved_tensors
            grads = backward_impl(
                dout.contiguous(), dlse.contiguous(), q, k, v, extra_k, extra_v, extra_add,
                out, lse, *ctx.params,
            )  # fmt: skip
            return (*grads, None, None, None, None)

    return _LocalAttention
