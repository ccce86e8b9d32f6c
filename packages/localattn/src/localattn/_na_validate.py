"""Boundary checks of the neighborhood-attention ops (``na1d``/``na2d``/``na3d``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from localattn._na_tiling import NASpec
from localattn._validate import SUPPORTED_DTYPES, _check_rank, _check_same

PerAxis = int | tuple[int, ...]
"""One value for every axis, or one per axis."""


@dataclass(frozen=True)
class NAInputs:
    """Validated inputs of a neighborhood-attention call (NATTEN's layout).

    Attributes:
        q, k, v: (B, *spatial, heads, D).
        spec: Grid, kernel, dilation and causal axes.
        scale: Score scale (``D**-0.5`` unless given).
        extra_k, extra_v: (B, n, heads, D) additional keys/values in the same softmax, or None.
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    spec: NASpec
    scale: float
    extra_k: torch.Tensor | None = None
    extra_v: torch.Tensor | None = None

    @property
    def num_extra(self) -> int:
        return 0 if self.extra_k is None else self.extra_k.shape[1]

    @property
    def requires_grad(self) -> bool:
        tensors = (self.q, self.k, self.v, self.extra_k, self.extra_v)
        return any(t is not None and t.requires_grad for t in tensors)


def per_axis(name: str, value, ndim: int, kind: type) -> tuple:
    """``value`` as an ``ndim``-tuple of ``kind`` (int or bool); ValueError otherwise."""

    def ok(x) -> bool:
        if kind is bool:
            return isinstance(x, bool)
        return isinstance(x, int) and not isinstance(x, bool)

    if ok(value):
        return (value,) * ndim
    if isinstance(value, (tuple, list)) and len(value) == ndim and all(ok(x) for x in value):
        return tuple(value)
    raise ValueError(
        f"{name} must be a {kind.__name__} or a tuple of {ndim} {kind.__name__}s, got {value!r}"
    )


def validate_na(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    ndim: int,
    kernel_size: PerAxis,
    dilation: PerAxis,
    is_causal: bool | tuple[bool, ...],
    scale: float | None,
    additional_keys: torch.Tensor | None,
    additional_values: torch.Tensor | None,
) -> NAInputs:
    """Check the arguments of ``na{ndim}d`` and bundle them; raises ValueError naming the problem."""
    layout = {1: "(B, L, heads, D)", 2: "(B, X, Y, heads, D)", 3: "(B, X, Y, Z, heads, D)"}[ndim]
    for name, t in (("query", query), ("key", key), ("value", value)):
        _check_rank(name, t, ndim + 3, layout)
    if query.dtype not in SUPPORTED_DTYPES:
        raise ValueError(
            f"query.dtype={query.dtype} is not supported; use one of {SUPPORTED_DTYPES}"
        )
    _check_same("key", key, query)
    _check_same("value", value, query)
    if key.shape != query.shape or value.shape != query.shape:
        raise ValueError(
            f"query, key and value must have the same shape {layout}, got {tuple(query.shape)}, "
            f"{tuple(key.shape)}, {tuple(value.shape)} (grouped heads are not supported)"
        )
    shape = tuple(query.shape[1:-2])
    kernel = per_axis("kernel_size", kernel_size, ndim, int)
    dil = per_axis("dilation", dilation, ndim, int)
    causal = per_axis("is_causal", is_causal, ndim, bool)
    for axis, (L, k, d) in enumerate(zip(shape, kernel, dil, strict=True)):
        if k < 1 or d < 1:
            raise ValueError(f"axis {axis}: kernel_size and dilation must be >= 1, got {k}, {d}")
        if k * d > L:
            raise ValueError(
                f"axis {axis}: kernel_size * dilation = {k} * {d} = {k * d} exceeds the axis "
                f"length {L} (needs kernel_size * dilation <= length)"
            )
    if (additional_keys is None) != (additional_values is None):
        raise ValueError("additional_keys and additional_values must be given together")
    if additional_keys is not None and additional_values is not None:
        for name, t in (
            ("additional_keys", additional_keys),
            ("additional_values", additional_values),
        ):
            _check_rank(name, t, 4, "(B, n, heads, D)")
            _check_same(name, t, query)
        b, heads, d = query.shape[0], query.shape[-2], query.shape[-1]
        if additional_keys.shape != additional_values.shape or (
            additional_keys.shape[0],
            additional_keys.shape[2],
            additional_keys.shape[3],
        ) != (b, heads, d):
            raise ValueError(
                f"additional_keys/values must both be (B={b}, n, heads={heads}, D={d}), got "
                f"{tuple(additional_keys.shape)} and {tuple(additional_values.shape)}"
            )
    if scale is None:
        scale = query.shape[-1] ** -0.5
    elif isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ValueError(f"scale must be a float, got {scale!r}")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite float, got {scale!r}")
    spec = NASpec(shape, kernel, dil, causal)
    return NAInputs(query, key, value, spec, float(scale), additional_keys, additional_values)
