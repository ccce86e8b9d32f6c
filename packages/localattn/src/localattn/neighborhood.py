"""Neighborhood attention in 1D, 2D and 3D with NATTEN's semantics and tensor layout.

Every query attends to the ``k_1 × ... × k_n`` keys of its neighborhood (per axis: a window of
``k`` positions of the query's dilation group, shifted inward at the borders so that every query
sees exactly ``k`` keys; or, on a causal axis, the ``k`` positions ending at the query, fewer near
the start), plus optional additional keys in the same softmax. ``docs/localattn.md`` gives the
exact definition and maps NATTEN's calls to these.
"""

from __future__ import annotations

import torch

from localattn._na_validate import PerAxis, validate_na
from localattn._validate import autocast_inputs
from localattn.dispatch import run_backend


def neighborhood_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: PerAxis,
    dilation: PerAxis = 1,
    is_causal: bool | tuple[bool, ...] = False,
    scale: float | None = None,
    additional_keys: torch.Tensor | None = None,
    additional_values: torch.Tensor | None = None,
    return_lse: bool = False,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Neighborhood attention over a 1-, 2- or 3-D token grid (the rank of ``query`` decides).

    Per axis of length ``L`` with kernel ``k`` and dilation ``d``: positions split into ``d``
    groups by ``i mod d``; query ``i`` (number ``g = i // d`` of its group, which holds ``L_g``
    positions) sees group positions ``start .. start + k - 1``,
    ``start = clamp(g - k // 2, 0, L_g - k)``; on a causal axis ``max(g - k + 1, 0) .. g``.
    The neighborhood is the product over axes; scores are ``q·k · scale``, one softmax over the
    neighborhood and the additional keys.

    Equivalent PyTorch (dense; ``allowed`` is the (N, N) neighborhood mask, N = prod(spatial))::

        s = torch.cat([q @ k.T, q @ additional_keys.T], -1) * scale
        s[..., :N][~allowed] = -inf
        out = s.softmax(-1) @ torch.cat([v, additional_values])

    Args:
        query: (B, *spatial, heads, D), spatial of 1, 2 or 3 axes.
        key: (B, *spatial, heads, D).
        value: (B, *spatial, heads, D).
        kernel_size: Keys per axis: an int, or one per axis; ``kernel_size * dilation <= length``.
        dilation: Dilation per axis (int or tuple), default 1.
        is_causal: Causal axes (bool or tuple of bools), default none.
        scale: Score scale, default ``D ** -0.5``.
        additional_keys: (B, n, heads, D) keys every query attends to, in the same softmax.
        additional_values: (B, n, heads, D), given with ``additional_keys``.
        return_lse: Also return the log-sum-exp of the scores, (B, *spatial, heads), which
            :func:`localattn.merge_attentions` uses to join this attention with another one.
        backend: ``"reference"`` (any device), ``"triton"``, ``"flex"``, or None (auto; see
            :func:`localattn.use_backend`, ``LOCALATTN_BACKEND``).

    Under ``torch.autocast`` the inputs are cast to the autocast dtype first, as
    ``scaled_dot_product_attention`` does; statistics stay float32.

    Returns:
        (B, *spatial, heads, D) output in the query's dtype; with ``return_lse`` also the
        (B, *spatial, heads) log-sum-exp (float32; float64 for float64 inputs), differentiable.

    Raises:
        ValueError: On malformed inputs (naming the argument or axis), or when a forced
            backend cannot run them.
    """
    if not isinstance(query, torch.Tensor) or query.dim() not in (4, 5, 6):
        shape = tuple(query.shape) if isinstance(query, torch.Tensor) else type(query).__name__
        raise ValueError(
            f"query must be (B, *spatial, heads, D) with 1, 2 or 3 spatial axes, got {shape}"
        )
    return _na(query, key, value, query.dim() - 3, kernel_size, dilation, is_causal, scale,
               additional_keys, additional_values, return_lse, backend)  # fmt: skip


def _na(query, key, value, ndim, kernel_size, dilation, is_causal, scale,
        additional_keys, additional_values, return_lse, backend):  # fmt: skip
    query, key, value, additional_keys, additional_values = autocast_inputs(
        query, key, value, additional_keys, additional_values
    )
    inputs = validate_na(query, key, value, ndim, kernel_size, dilation, is_causal, scale,
                         additional_keys, additional_values)  # fmt: skip
    out, lse = run_backend(
        lambda b: b.na_not_supported_reasons(inputs),
        query.device.type,
        backend,
        lambda b: b.na_forward(inputs),
    )
    return (out, lse) if return_lse else out


def na1d(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: PerAxis,
    dilation: PerAxis = 1,
    is_causal: bool | tuple[bool] = False,
    scale: float | None = None,
    additional_keys: torch.Tensor | None = None,
    additional_values: torch.Tensor | None = None,
    return_lse: bool = False,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """1D neighborhood attention: q/k/v (B, L, heads, D); see :func:`neighborhood_attention`."""
    return _na(query, key, value, 1, kernel_size, dilation, is_causal, scale,
               additional_keys, additional_values, return_lse, backend)  # fmt: skip


def na2d(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: PerAxis,
    dilation: PerAxis = 1,
    is_causal: bool | tuple[bool, bool] = False,
    scale: float | None = None,
    additional_keys: torch.Tensor | None = None,
    additional_values: torch.Tensor | None = None,
    return_lse: bool = False,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """2D neighborhood attention: q/k/v (B, X, Y, heads, D); see :func:`neighborhood_attention`."""
    return _na(query, key, value, 2, kernel_size, dilation, is_causal, scale,
               additional_keys, additional_values, return_lse, backend)  # fmt: skip


def na3d(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    kernel_size: PerAxis,
    dilation: PerAxis = 1,
    is_causal: bool | tuple[bool, bool, bool] = False,
    scale: float | None = None,
    additional_keys: torch.Tensor | None = None,
    additional_values: torch.Tensor | None = None,
    return_lse: bool = False,
    backend: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """3D neighborhood attention: q/k/v (B, X, Y, Z, heads, D); see
    :func:`neighborhood_attention`."""
    return _na(query, key, value, 3, kernel_size, dilation, is_causal, scale,
               additional_keys, additional_values, return_lse, backend)  # fmt: skip
