"""``LocalAttention2d``: a thin multi-head module around :func:`local_attention_2d`."""

from __future__ import annotations

import torch
from torch import nn

from localattn.functional import local_attention_2d
from localattn.types import KernelSize, WindowSpec


class LocalAttention2d(nn.Module):
    """Multi-head 2D local self-attention over a (B, H, W, C) grid, with optional global tokens.

    Queries, keys and values come from one fused ``qkv`` projection; global tokens (``context``)
    are projected by the same layer and join every window's softmax.

    Args:
        dim: Channels C.
        num_heads: Heads; ``dim`` must be divisible by it.
        kernel_size: ``k`` or ``(kH, kW)``.
        causal: Raster-causal half window (odd sizes only).
        bias: Whether the projections have biases.
        backend: Forced backend name, or None (auto).
        device, dtype: Factory kwargs for the parameters.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        kernel_size: KernelSize,
        *,
        causal: bool = False,
        bias: bool = True,
        backend: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"dim={dim} must be a positive multiple of num_heads={num_heads}")
        self.window = WindowSpec.from_kernel_size(kernel_size, causal)
        self.num_heads = num_heads
        self.backend = backend
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias, device=device, dtype=dtype)
        self.proj = nn.Linear(dim, dim, bias=bias, device=device, dtype=dtype)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, *S, C) -> three (B, heads, *S, C/heads) tensors."""
        *lead, c = x.shape
        qkv = self.qkv(x).reshape(*lead, 3, self.num_heads, c // self.num_heads)
        qkv = qkv.movedim(-3, 0).movedim(-2, 2)  # (3, B, heads, *S, Dh)
        return qkv[0], qkv[1], qkv[2]

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_bias: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend.

        Args:
            x: (B, H, W, C) grid tokens.
            context: (B, T, C) global tokens, or None.
            context_bias: Score bias broadcastable to (B, heads, T).
            context_mask: bool (B, T), False = padding.

        Returns:
            (B, H, W, C).
        """
        if x.dim() != 4:
            raise ValueError(f"x must be (B, H, W, C), got shape {tuple(x.shape)}")
        q, k, v = self._heads(x)
        extra_k = extra_v = None
        if context is not None:
            _, extra_k, extra_v = self._heads(context)
        out = local_attention_2d(
            q,
            k,
            v,
            (self.window.kh, self.window.kw),
            causal=self.window.causal,
            extra_k=extra_k,
            extra_v=extra_v,
            extra_bias=context_bias,
            extra_mask=context_mask,
            backend=self.backend,
        )
        b, heads, h, w, dh = out.shape
        return self.proj(out.permute(0, 2, 3, 1, 4).reshape(b, h, w, heads * dh))
