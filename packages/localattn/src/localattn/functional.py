"""The fused local-attention op and the log-sum-exp merge."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from localattn._validate import autocast_inputs, extra_additive, validate_attention
from localattn.dispatch import run_backend
from localattn.types import KernelSize


def local_attention_2d(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kernel_size: KernelSize,
    *,
    causal: bool = False,
    extra_k: torch.Tensor | None = None,
    extra_v: torch.Tensor | None = None,
    extra_bias: torch.Tensor | None = None,
    extra_mask: torch.Tensor | None = None,
    scale: float | None = None,
    return_lse: bool = False,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """2D local attention with CogView2 semantics, plus optional global tokens in one softmax.

    Query (i, j) attends to the keys of the ``kH × kW`` window centred at ``(i // ah, j // aw)``
    on the key grid (``ah = H / H'``, ``aw = W / W'``); window slots outside the key grid are
    excluded (never clamped inward). With ``causal=True`` only the first ``kH*kW // 2 + 1`` slots
    in row-major order are kept. Even sizes give asymmetric windows (offsets ``-r .. k-1-r``,
    ``r = k // 2``). Every query also attends to the ``T`` global tokens, in the same softmax.

    Equivalent PyTorch (dense; ``allowed`` is the (H·W, H'·W') window mask)::

        s = torch.cat([q_flat @ k_flat.T, q_flat @ extra_k.T + extra_bias], -1) * scale
        s[~cat([allowed, extra_mask])] = -inf
        out = s.softmax(-1) @ cat([v_flat, extra_v])

    Args:
        q: (B, heads, H, W, D) queries.
        k: (B, heads, H', W', D) keys, with H % H' == 0 and W % W' == 0.
        v: (B, heads, H', W', D) values.
        kernel_size: ``k`` or ``(kH, kW)``: window rows × columns on the key grid.
        causal: Raster-causal half window (odd sizes only).
        extra_k: (B, heads, T, D) global keys every query attends to.
        extra_v: (B, heads, T, D) global values.
        extra_bias: Additive score bias of the global tokens, broadcastable to (B, heads, T)
            (added after scaling). Differentiable.
        extra_mask: bool (B, T); False marks padding that is never attended.
        scale: Score scale; default ``1/sqrt(D)``.
        return_lse: Also return the natural log-sum-exp of the scaled scores.
        backend: ``"reference"``, ``"triton"``, ``"flex"``, or None (auto; see
            :func:`localattn.use_backend` and ``LOCALATTN_BACKEND``).

    Under ``torch.autocast``, q, k, v and the global tokens are cast to the autocast dtype
    first, as ``scaled_dot_product_attention`` does; statistics stay float32.

    Returns:
        (B, heads, H, W, D) output in q's dtype; with ``return_lse`` also the (B, heads, H, W)
        log-sum-exp (float32, or float64 for float64 inputs), differentiable.

    Raises:
        ValueError: On malformed inputs, or when a forced backend cannot run them.
    """
    q, k, v, extra_k, extra_v = autocast_inputs(q, k, v, extra_k, extra_v)
    inputs = validate_attention(
        q,
        k,
        v,
        kernel_size,
        causal=causal,
        extra_k=extra_k,
        extra_v=extra_v,
        extra_bias=extra_bias,
        extra_mask=extra_mask,
        scale=scale,
    )
    extra_add = extra_additive(inputs)
    out, lse = run_backend(
        lambda b: b.not_supported_reasons(inputs),
        q.device.type,
        backend,
        lambda b: b.forward(inputs, extra_add),
    )
    return (out, lse) if return_lse else out


def merge_attentions(
    outputs: Sequence[torch.Tensor], lses: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine attentions over disjoint key sets into the attention over their union.

    ``out = Σ_i exp(lse_i - lse) · out_i`` with ``lse = logsumexp_i(lse_i)``: exactly one
    joint softmax over all keys. Differentiable w.r.t. every output and lse.

    Args:
        outputs: Partial outputs, each (..., D) with identical shapes, e.g. (B, heads, H, W, D).
        lses: Their log-sum-exps, each shaped like the output without its last dim.

    Returns:
        (merged output in the outputs' dtype, merged lse in the lses' dtype).

    Raises:
        ValueError: On empty or mismatched inputs.
    """
    if len(outputs) == 0 or len(outputs) != len(lses):
        raise ValueError(
            f"need as many lses as outputs (>= 1), got {len(outputs)} outputs, {len(lses)} lses"
        )
    shape = outputs[0].shape
    for i, (o, lse) in enumerate(zip(outputs, lses, strict=False)):
        if o.shape != shape or lse.shape != shape[:-1]:
            raise ValueError(
                f"outputs[{i}] shape {tuple(o.shape)} / lses[{i}] shape {tuple(lse.shape)} "
                f"must be {tuple(shape)} / {tuple(shape[:-1])}"
            )
    stacked = torch.stack([lse for lse in lses])
    lse = torch.logsumexp(stacked, dim=0)
    weights = torch.exp(stacked - lse)
    merged = sum(w[..., None] * o.to(w.dtype) for w, o in zip(weights, outputs, strict=False))
    return merged.to(outputs[0].dtype), lse
