"""The icetk VQ-VAE: a typed module tree whose state-dict names match ``ice_image.pt``."""

from icetk.vqvae.config import VQVAEConfig
from icetk.vqvae.hvqvae import HVQVAE
from icetk.vqvae.quantize import VectorQuantizeEMA, nearest_code

__all__ = ["HVQVAE", "VQVAEConfig", "VectorQuantizeEMA", "nearest_code"]
