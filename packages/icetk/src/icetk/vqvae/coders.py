"""Encoder and decoders of the VQ-VAE (taming-transformers layout, no timestep embedding)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from icetk.vqvae.blocks import AttnBlock, DownSample, ResnetBlock, Upsample, normalize
from icetk.vqvae.config import VQVAEConfig


class _Mid(nn.Module):
    def __init__(self, channels: int, num_groups: int, eps: float) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, num_groups, eps)
        self.attn_1 = AttnBlock(channels, num_groups, eps)
        self.block_2 = ResnetBlock(channels, channels, num_groups, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Stage(nn.Module):
    """One resolution: ``block`` list, ``attn`` list, optional ``downsample``/``upsample``."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()

    def run(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            x = block(x)
            if len(self.attn) > 0:
                x = self.attn[i](x)
        return x


class Encoder(nn.Module):
    """Image (B, 3, S, S) → level-0 latent (B, z_channels, S/base, S/base)."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        g, eps, ch = cfg.num_groups, cfg.norm_eps, cfg.enc_channels
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        in_mult = (1, *cfg.enc_channel_mult)
        res = cfg.nominal_resolution
        self.down = nn.ModuleList()
        for i, mult in enumerate(cfg.enc_channel_mult):
            stage, cin = _Stage(), ch * in_mult[i]
            for _ in range(cfg.enc_num_res_blocks):
                stage.block.append(ResnetBlock(cin, ch * mult, g, eps))
                cin = ch * mult
                if res in cfg.attn_resolutions:
                    stage.attn.append(AttnBlock(cin, g, eps))
            if i != len(cfg.enc_channel_mult) - 1:
                stage.downsample = DownSample(cin)
                res //= 2
            self.down.append(stage)
        self.mid = _Mid(cin, g, eps)
        self.norm_out = normalize(cin, g, eps)
        self.conv_out = nn.Conv2d(cin, cfg.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, S, S) normalised image → (B, z, S/base, S/base)."""
        h = self.conv_in(x)
        for stage in self.down:
            h = stage.run(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent (B, z, h, w) → image (B, 3, h·2^(n-1), w·2^(n-1)) for ``channel_mult`` of length n."""

    def __init__(self, cfg: VQVAEConfig, channel_mult: tuple[int, ...]) -> None:
        super().__init__()
        g, eps, ch = cfg.num_groups, cfg.norm_eps, cfg.dec_channels
        cin = ch * channel_mult[-1]
        res = cfg.nominal_resolution // 2 ** (len(channel_mult) - 1)
        self.conv_in = nn.Conv2d(cfg.z_channels, cin, 3, padding=1)
        self.mid = _Mid(cin, g, eps)
        stages: list[_Stage] = []
        for i in reversed(range(len(channel_mult))):
            stage = _Stage()
            for _ in range(cfg.dec_num_res_blocks + 1):
                stage.block.append(ResnetBlock(cin, ch * channel_mult[i], g, eps))
                cin = ch * channel_mult[i]
                if res in cfg.attn_resolutions:
                    stage.attn.append(AttnBlock(cin, g, eps))
            if i != 0:
                stage.upsample = Upsample(cin)
                res *= 2
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)  # up.0 is the finest resolution, run last
        self.norm_out = normalize(cin, g, eps)
        self.conv_out = nn.Conv2d(cin, cfg.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, z_channels, h, w) → (B, 3, H, W) in normalised image space."""
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            h = stage.run(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
