"""Building blocks of the icetk VQ-VAE; attribute names match the official state dict."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def normalize(channels: int, num_groups: int, eps: float) -> nn.GroupNorm:
    """GroupNorm as the official ``Normalize`` (affine)."""
    return nn.GroupNorm(num_groups, channels, eps=eps, affine=True)


class ResnetBlock(nn.Module):
    """``norm1 → swish → conv1 → norm2 → swish → conv2`` plus a (1×1 ``nin_shortcut``) skip."""

    def __init__(self, cin: int, cout: int, num_groups: int, eps: float) -> None:
        super().__init__()
        self.norm1 = normalize(cin, num_groups, eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = normalize(cout, num_groups, eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, cin, H, W) → (B, cout, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all H·W positions, with a residual add."""

    def __init__(self, channels: int, num_groups: int, eps: float) -> None:
        super().__init__()
        self.norm = normalize(channels, num_groups, eps)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) → (B, C, H, W); softmax(qᵀk / sqrt(C)) v."""
        b, c, h, w = x.shape
        y = self.norm(x)
        # (B, 1, H*W, C) each: one head
        q, k, v = (t(y).reshape(b, 1, c, h * w).transpose(2, 3) for t in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, 1, H*W, C)
        out = out.transpose(2, 3).reshape(b, c, h, w)
        return x + self.proj_out(out)


class DownSample(nn.Module):
    """Zero-pad right and bottom by 1, then a 3×3 stride-2 conv: (H, W) → (H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) → (B, C, H/2, W/2)."""
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest ×2, then a 3×3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) → (B, C, 2H, 2W)."""
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResidualDownSample(nn.Module):
    """``avg_pool2d(2)(x) + DownSample(x)``: one hierarchy level down (only the conv has weights)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pooling_down_sampler = nn.AvgPool2d(2)
        self.conv_down_sampler = DownSample(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) → (B, C, H/2, W/2)."""
        return self.pooling_down_sampler(x) + self.conv_down_sampler(x)
