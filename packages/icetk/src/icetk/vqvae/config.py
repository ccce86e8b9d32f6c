"""Size configuration of the hierarchical VQ-VAE (`HVQVAE`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class VQVAEConfig:
    """Every size number of the VQ-VAE; ``VQVAEConfig.official()`` is the released ``ice_image.pt``.

    The encoder maps ``S`` px to ``S / base_compression`` (level 0); ``num_levels - 1`` residual
    down-samplers give levels 1, 2, ... (compression ``base_compression * 2**level``). Decoder
    ``decs[num_levels - 1 - level]`` decodes level ``level``; one codebook serves every level.

    Attributes:
        in_channels: Image channels (3).
        enc_channels: Base width of the encoder.
        enc_channel_mult: Width multiplier per encoder stage; ``len - 1`` stride-2 downsamplings.
        enc_num_res_blocks: ResnetBlocks per encoder stage.
        z_channels: Latent (and code) dimension.
        dec_channels: Base width of the decoders.
        dec_channel_mults: Multipliers of each decoder, ordered as ``decs.0, decs.1, ...``;
            decoder ``decs[i]`` must upsample by the compression of level ``num_levels - 1 - i``.
        dec_num_res_blocks: ``num_res_blocks`` of the decoders (each stage has this + 1 blocks).
        attn_resolutions: Nominal resolutions that get an attention block (taming convention).
        nominal_resolution: Nominal input resolution used only to place attention blocks.
        num_codes: Codebook size (the number of image tokens).
        num_groups: GroupNorm groups.
        norm_eps: GroupNorm epsilon.
    """

    in_channels: int = 3
    enc_channels: int = 128
    enc_channel_mult: tuple[int, ...] = (1, 2, 4)
    enc_num_res_blocks: int = 2
    z_channels: int = 256
    dec_channels: int = 128
    dec_channel_mults: tuple[tuple[int, ...], ...] = ((1, 1, 1, 2, 4), (1, 1, 2, 4), (1, 2, 4))
    dec_num_res_blocks: int = 0
    attn_resolutions: tuple[int, ...] = (16,)
    nominal_resolution: int = 256
    num_codes: int = 20000
    num_groups: int = 32
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        object.__setattr__(self, "enc_channel_mult", tuple(self.enc_channel_mult))
        object.__setattr__(self, "attn_resolutions", tuple(self.attn_resolutions))
        object.__setattr__(
            self, "dec_channel_mults", tuple(tuple(m) for m in self.dec_channel_mults)
        )
        if not self.dec_channel_mults:
            raise ValueError("dec_channel_mults must name at least one decoder")
        if self.num_codes < 2:
            raise ValueError(f"num_codes must be >= 2, got {self.num_codes}")
        widths = [self.enc_channels * m for m in self.enc_channel_mult]
        widths += [self.dec_channels * m for mult in self.dec_channel_mults for m in mult]
        widths += [self.z_channels]
        bad = sorted({w for w in widths if w % self.num_groups})
        if bad:
            raise ValueError(
                f"channel widths {bad} are not divisible by num_groups={self.num_groups}"
            )
        for i, mult in enumerate(self.dec_channel_mults):
            level = self.num_levels - 1 - i
            if 2 ** (len(mult) - 1) != self.compression_of(level):
                raise ValueError(
                    f"decs.{i} upsamples by {2 ** (len(mult) - 1)} but decodes level {level}, "
                    f"compression {self.compression_of(level)}"
                )

    @property
    def num_levels(self) -> int:
        """Number of compression levels (= decoders)."""
        return len(self.dec_channel_mults)

    @property
    def base_compression(self) -> int:
        """Compression of level 0 (the encoder output)."""
        return 2 ** (len(self.enc_channel_mult) - 1)

    def compression_of(self, level: int) -> int:
        """Down-sampling factor of ``level``."""
        return self.base_compression * 2**level

    @property
    def compressions(self) -> tuple[int, ...]:
        """Supported compression rates, level 0 first (official: (4, 8, 16))."""
        return tuple(self.compression_of(level) for level in range(self.num_levels))

    def level_of(self, compression: int) -> int:
        """Level for a compression rate (official: 4 → 0, 8 → 1, 16 → 2)."""
        if compression not in self.compressions:
            raise ValueError(f"compression must be one of {self.compressions}, got {compression}")
        return self.compressions.index(compression)

    @classmethod
    def official(cls) -> VQVAEConfig:
        """The released icetk VQ-VAE (97,439,497 parameters, 20000 codes, compression 4/8/16)."""
        return cls()

    @classmethod
    def small(cls, num_codes: int = 1024) -> VQVAEConfig:
        """A 1.15M-parameter (4.6 MB fp32) model for our demo tokenizer: compression 8 only, code dim 64."""
        return cls(
            enc_channels=32,
            enc_channel_mult=(1, 2, 2, 2),
            enc_num_res_blocks=1,
            z_channels=64,
            dec_channels=32,
            dec_channel_mults=((1, 2, 2, 2),),
            attn_resolutions=(),
            num_codes=num_codes,
            num_groups=8,
        )

    @classmethod
    def tiny(cls, num_codes: int = 64) -> VQVAEConfig:
        """A ~100k-parameter model for unit tests (compression 8 and 16)."""
        return cls(
            enc_channels=8,
            enc_channel_mult=(1, 2, 2, 2),
            enc_num_res_blocks=1,
            z_channels=16,
            dec_channels=8,
            dec_channel_mults=((1, 2, 2, 2, 2), (1, 2, 2, 2)),
            attn_resolutions=(),
            num_codes=num_codes,
            num_groups=4,
        )

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping) -> VQVAEConfig:
        """Inverse of ``to_dict``; ValueError on unknown fields."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown VQVAEConfig fields {sorted(unknown)}")
        return cls(**d)
