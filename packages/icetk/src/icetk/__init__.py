"""Unified image / Chinese / English tokenizer: sentencepiece text and VQ-VAE image codes in one id space.

``IceTokenizer`` composes a ``TextTokenizer`` (sentencepiece) and an ``ImageTokenizer``
(hierarchical VQ-VAE) over a ``VocabularyLayout``. It loads the official ``ice_text.model`` +
``ice_image.pt`` pair or our own format; nothing is ever downloaded.
"""

from importlib.metadata import version as _version

from icetk.checkpoint import atomic_write, load_official_vqvae, load_vqvae, save_vqvae
from icetk.image import ImageTokenizer
from icetk.layout import DEFAULT_SPECIAL_TOKENS, TEXT_CLASSES, VocabularyLayout
from icetk.preprocess import ImageNormalization, pil_to_rgb, resize_center_crop
from icetk.text import TextTokenizer
from icetk.tokenizer import IceTokenizer
from icetk.train_text import TextTrainConfig, train_text_tokenizer
from icetk.vqvae import HVQVAE, VQVAEConfig

__version__ = _version("icetk")

__all__ = [
    "DEFAULT_SPECIAL_TOKENS",
    "HVQVAE",
    "TEXT_CLASSES",
    "IceTokenizer",
    "ImageNormalization",
    "ImageTokenizer",
    "TextTokenizer",
    "TextTrainConfig",
    "VQVAEConfig",
    "VocabularyLayout",
    "__version__",
    "atomic_write",
    "load_official_vqvae",
    "load_vqvae",
    "pil_to_rgb",
    "resize_center_crop",
    "save_vqvae",
    "train_text_tokenizer",
]
