"""The hierarchical VQ-VAE ``HVQVAE``: encoder, residual down-samplers, one codebook, decoders."""

from __future__ import annotations

import torch
from torch import nn

from icetk.vqvae.blocks import ResidualDownSample
from icetk.vqvae.coders import Decoder, Encoder
from icetk.vqvae.config import VQVAEConfig
from icetk.vqvae.quantize import VectorQuantizeEMA


class HVQVAE(nn.Module):
    """The icetk VQ-VAE; ``state_dict()`` keys equal the official ``ice_image.pt['module']`` keys.

    Args:
        config: Sizes; ``VQVAEConfig.official()`` has 329 state-dict entries and 97,439,497
            parameters.
    """

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.enc = Encoder(config)
        self.decs = nn.ModuleList(Decoder(config, m) for m in config.dec_channel_mults)
        self.quantize = VectorQuantizeEMA(config.z_channels, config.num_codes)
        self.down_samplers = nn.ModuleList(
            ResidualDownSample(config.z_channels) for _ in range(config.num_levels - 1)
        )

    def latent(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """x: (B, 3, S, S) normalised → (B, z, S/c, S/c) pre-quantization latent of ``level``."""
        h = self.enc(x)
        for down in self.down_samplers[:level]:
            h = down(h)
        return h

    def single_encode(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """x: (B, 3, S, S) normalised → (B, S/c, S/c) ids at compression c of ``level``."""
        return self.quantize.encode(self.latent(x, level))

    def single_decode_code(self, ids: torch.Tensor, level: int) -> torch.Tensor:
        """ids: (B, h, w) → (B, 3, h·c, w·c) normalised image (unclamped)."""
        z = self.quantize.lookup(ids)  # (B, D, h, w)
        return self.decs[self.config.num_levels - 1 - level](
            z.to(self.decs[0].conv_in.weight.dtype)
        )

    def forward(
        self, x: torch.Tensor, level: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass at one level.

        Returns:
            reconstruction (B, 3, S, S), ids (B, h, w), commitment loss, projected latents (N, D).
        """
        q, ids, commit, flat = self.quantize(self.latent(x, level))
        dec = self.decs[self.config.num_levels - 1 - level]
        return dec(q.to(dec.conv_in.weight.dtype)), ids, commit, flat
