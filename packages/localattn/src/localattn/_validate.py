"""Boundary checks for the public ops: every problem becomes a ValueError that names it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from localattn.types import KernelSize, WindowSpec

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class AttentionInputs:
    """Validated inputs of :func:`localattn.local_attention_2d`, with the derived sizes.

    Attributes:
        q: (B, heads, H, W, D) queries.
        k: (B, heads, H', W', D) keys.
        v: (B, heads, H', W', D) values.
        window: The window spec.
        scale: Score scale (1/sqrt(D) unless given).
        extra_k: (B, heads, T, D) global keys, or None.
        extra_v: (B, heads, T, D) global values, or None.
        extra_bias: Additive bias broadcastable to (B, heads, T), or None.
        extra_mask: bool (B, T), False = never attended, or None.
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    window: WindowSpec
    scale: float
    extra_k: torch.Tensor | None = None
    extra_v: torch.Tensor | None = None
    extra_bias: torch.Tensor | None = None
    extra_mask: torch.Tensor | None = None

    @property
    def ratio(self) -> tuple[int, int]:
        """(ah, aw): how many query rows/columns share one key-grid centre."""
        return self.q.shape[2] // self.k.shape[2], self.q.shape[3] // self.k.shape[3]

    @property
    def num_extra(self) -> int:
        """T, the number of global tokens (0 when there are none)."""
        return 0 if self.extra_k is None else self.extra_k.shape[2]

    @property
    def requires_grad(self) -> bool:
        """Whether any input tensor requires a gradient."""
        tensors = (self.q, self.k, self.v, self.extra_k, self.extra_v, self.extra_bias)
        return any(t is not None and t.requires_grad for t in tensors)


def _check_rank(name: str, t: torch.Tensor, rank: int, layout: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != rank:
        raise ValueError(f"{name} must have {rank} dims {layout}, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); every dim must be >= 1")


def _check_same(name: str, t: torch.Tensor, ref: torch.Tensor) -> None:
    if t.dtype != ref.dtype:
        raise ValueError(f"{name}.dtype={t.dtype} differs from q.dtype={ref.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{name}.device={t.device} differs from q.device={ref.device}")


def check_grids(q_hw: tuple[int, int], k_hw: tuple[int, int], what: str = "k") -> None:
    """Raise unless the query grid is an integer multiple of the key grid in both axes."""
    (h, w), (hk, wk) = q_hw, k_hw
    if h % hk or w % wk:
        raise ValueError(
            f"query grid {h}x{w} must be an integer multiple of the {what} grid {hk}x{wk} "
            "(H % H' == 0 and W % W' == 0)"
        )


def validate_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kernel_size: KernelSize,
    *,
    causal: bool,
    extra_k: torch.Tensor | None,
    extra_v: torch.Tensor | None,
    extra_bias: torch.Tensor | None,
    extra_mask: torch.Tensor | None,
    scale: float | None,
) -> AttentionInputs:
    """Check the arguments of ``local_attention_2d`` and bundle them; raises ValueError."""
    window = WindowSpec.from_kernel_size(kernel_size, causal)
    layout = "(B, heads, H, W, D)"
    _check_rank("q", q, 5, layout)
    _check_rank("k", k, 5, "(B, heads, H', W', D)")
    _check_rank("v", v, 5, "(B, heads, H', W', D)")
    if q.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"q.dtype={q.dtype} is not supported; use one of {SUPPORTED_DTYPES}")
    _check_same("k", k, q)
    _check_same("v", v, q)
    if k.shape != v.shape:
        raise ValueError(
            f"k and v must have the same shape, got {tuple(k.shape)} vs {tuple(v.shape)}"
        )
    b, heads, h, w, d = q.shape
    if k.shape[0] != b or k.shape[1] != heads:
        raise ValueError(
            f"k batch/heads {tuple(k.shape[:2])} must equal q batch/heads {(b, heads)}"
        )
    if k.shape[4] != d:
        raise ValueError(f"head dim of k ({k.shape[4]}) must equal head dim of q ({d})")
    check_grids((h, w), (k.shape[2], k.shape[3]))
    if (extra_k is None) != (extra_v is None):
        raise ValueError("extra_k and extra_v must be given together")
    if extra_k is not None and extra_v is not None:
        _check_rank("extra_k", extra_k, 4, "(B, heads, T, D)")
        _check_rank("extra_v", extra_v, 4, "(B, heads, T, D)")
        _check_same("extra_k", extra_k, q)
        _check_same("extra_v", extra_v, q)
        if extra_k.shape != extra_v.shape:
            raise ValueError(
                f"extra_k and extra_v must have the same shape, got {tuple(extra_k.shape)} "
                f"vs {tuple(extra_v.shape)}"
            )
        if tuple(extra_k.shape[:2]) != (b, heads) or extra_k.shape[3] != d:
            raise ValueError(
                f"extra_k shape {tuple(extra_k.shape)} must be (B={b}, heads={heads}, T, D={d})"
            )
        t = extra_k.shape[2]
        if extra_bias is not None:
            if not isinstance(extra_bias, torch.Tensor) or not extra_bias.is_floating_point():
                raise ValueError("extra_bias must be a floating-point tensor")
            if extra_bias.device != q.device:
                raise ValueError(f"extra_bias.device={extra_bias.device} differs from {q.device}")
            try:
                shape = torch.broadcast_shapes(extra_bias.shape, (b, heads, t))
            except RuntimeError:
                shape = None
            if shape != (b, heads, t):
                raise ValueError(
                    f"extra_bias shape {tuple(extra_bias.shape)} must broadcast to "
                    f"(B, heads, T)={(b, heads, t)}"
                )
        if extra_mask is not None:
            if not isinstance(extra_mask, torch.Tensor) or extra_mask.dtype != torch.bool:
                raise ValueError("extra_mask must be a bool tensor (False = padding)")
            if tuple(extra_mask.shape) != (b, t):
                raise ValueError(
                    f"extra_mask shape {tuple(extra_mask.shape)} must be (B, T)={(b, t)}"
                )
            if extra_mask.device != q.device:
                raise ValueError(f"extra_mask.device={extra_mask.device} differs from {q.device}")
    elif extra_bias is not None or extra_mask is not None:
        raise ValueError("extra_bias and extra_mask need extra_k and extra_v")
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    elif isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ValueError(f"scale must be a float, got {scale!r}")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite float, got {scale!r}")
    return AttentionInputs(q, k, v, window, float(scale), extra_k, extra_v, extra_bias, extra_mask)


def extra_additive(inputs: AttentionInputs) -> torch.Tensor | None:
    """The (B, heads, T) additive term for the global tokens: bias, and -inf where masked.

    Returned in float32 (float64 for float64 inputs); differentiable w.r.t. ``extra_bias``.
    """
    if inputs.extra_k is None:
        return None
    b, heads, t, _ = inputs.extra_k.shape
    dtype = torch.float64 if inputs.q.dtype == torch.float64 else torch.float32
    add = torch.zeros((b, heads, t), dtype=dtype, device=inputs.q.device)
    if inputs.extra_bias is not None:
        add = add + inputs.extra_bias.to(dtype)
    if inputs.extra_mask is not None:
        add = add.masked_fill(~inputs.extra_mask[:, None, :], float("-inf"))
    return add


def autocast_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    extra_k: torch.Tensor | None,
    extra_v: torch.Tensor | None,
) -> tuple[torch.Tensor, ...]:
    """Under ``torch.autocast`` on q's device, q, k, v and the global tokens cast to the
    autocast dtype (what ``scaled_dot_product_attention`` does); unchanged otherwise."""
    device = q.device.type
    if not torch.is_autocast_enabled(device):
        return q, k, v, extra_k, extra_v
    dtype = torch.get_autocast_dtype(device)

    def cast(t: torch.Tensor | None) -> torch.Tensor | None:
        return t.to(dtype) if t is not None and t.is_floating_point() else t

    return cast(q), cast(k), cast(v), cast(extra_k), cast(extra_v)
