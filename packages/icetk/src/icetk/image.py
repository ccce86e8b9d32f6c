"""``ImageTokenizer``: images ↔ VQ-VAE code ids at compression 4, 8 or 16."""

from __future__ import annotations

from typing import Literal

import torch
from PIL import Image

from icetk.preprocess import ImageInput, ImageNormalization, batch_images, grid_side
from icetk.vqvae import HVQVAE, VQVAEConfig


class ImageTokenizer:
    """Wraps an ``HVQVAE`` with the official preprocessing.

    Args:
        model: The VQ-VAE (any size); it is put in eval mode. Its device and dtype are used.
        normalization: Normalisation constants (official by default).
    """

    def __init__(self, model: HVQVAE, normalization: ImageNormalization | None = None) -> None:
        self.model = model.eval()
        self.normalization = normalization or ImageNormalization()

    @property
    def config(self) -> VQVAEConfig:
        """The VQ-VAE size configuration."""
        return self.model.config

    @property
    def num_image_tokens(self) -> int:
        """Codebook size."""
        return self.config.num_codes

    @property
    def codebook(self) -> torch.Tensor:
        """(num_codes, code_dim) float32 CPU copy of the code vectors (e.g. for K-means)."""
        return self.model.quantize.codebook.detach().float().cpu().clone()

    def _param(self) -> torch.Tensor:
        return self.model.quantize.embed.weight

    @torch.no_grad()
    def encode_image(
        self,
        images: ImageInput | list[ImageInput],
        *,
        image_size: int | None = None,
        compression: int = 8,
    ) -> torch.Tensor:
        """Images → code ids.

        Args:
            images: A PIL image, a path, a float tensor in [0, 1] shaped (3, H, W) or
                (B, 3, H, W), or a list of these. Grayscale, palette and RGBA inputs are converted
                to RGB (alpha composited on white).
            image_size: If given, resize the shorter side to this (bilinear, antialiased) and
                centre-crop to a square; otherwise H and W must be multiples of ``compression``.
            compression: 4, 8 or 16 for the official model (see ``config.compressions``).

        Returns:
            (B, H / compression, W / compression) int64 ids in ``[0, num_image_tokens)``.
        """
        level = self.config.level_of(compression)
        x = batch_images(images, image_size)  # (B, 3, H, W)
        h, w = x.shape[-2:]
        if h % compression or w % compression:
            raise ValueError(
                f"image size {h}×{w} is not a multiple of compression {compression}; pass image_size=..."
            )
        param = self._param()
        x = self.normalization.normalize(x).to(param.device, param.dtype)
        return self.model.single_encode(x, level).cpu()

    @torch.no_grad()
    def decode_image(
        self,
        ids: torch.Tensor | list[int] | list[list[int]],
        *,
        compression: int = 8,
        output: Literal["pt", "pil"] = "pt",
    ) -> torch.Tensor | list[Image.Image]:
        """Code ids → images.

        Args:
            ids: (B, h, w), (B, N) with N a square, (N,) or nested lists of ints.
            compression: Level the ids were encoded at.
            output: "pt" for float32 (B, 3, h·c, w·c) in [0, 1]-space **unclamped** (official
                behaviour); "pil" for a list of RGB PIL images, clamped via ``x·255 + 0.5``.

        Returns:
            Tensor or list of PIL images, as chosen by ``output``.
        """
        if output not in ("pt", "pil"):
            raise ValueError(f"output must be 'pt' or 'pil', got {output!r}")
        level = self.config.level_of(compression)
        ids = torch.as_tensor(ids)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
            raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
        if ids.numel() == 0:
            raise ValueError(f"ids are empty: shape {tuple(ids.shape)}")
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim == 2:
            s = grid_side(ids.shape[1])
            ids = ids.reshape(ids.shape[0], s, s)  # (B, s, s), row-major
        if ids.ndim != 3:
            raise ValueError(f"ids must be (N,), (B, N) or (B, h, w), got shape {tuple(ids.shape)}")
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= self.num_image_tokens:
            raise ValueError(
                f"image ids must be in [0, {self.num_image_tokens}), got min {lo}, max {hi}"
            )
        out = self.model.single_decode_code(ids.long().to(self._param().device), level)
        out = self.normalization.denormalize(out.float()).cpu()
        if output == "pt":
            return out
        pixels = (out * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(p) for p in pixels]
