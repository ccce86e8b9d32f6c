"""``IceTokenizer``: text and image tokenizers sharing one id space, with load/save."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch
from PIL import Image

from icetk.checkpoint import (
    atomic_write_bytes,
    load_official_vqvae,
    load_vqvae,
    save_vqvae,
)
from icetk.image import ImageTokenizer
from icetk.layout import VocabularyLayout
from icetk.preprocess import ImageInput, ImageNormalization
from icetk.text import TextTokenizer
from icetk.vqvae import VQVAEConfig

#: File names of the official pair.
OFFICIAL_TEXT_FILE = "ice_text.model"
OFFICIAL_IMAGE_FILE = "ice_image.pt"
#: File names of our own format.
CONFIG_FILE = "icetk_config.json"
TEXT_FILE = "text.model"
IMAGE_FILE = "image.safetensors"
FORMAT_VERSION = 1


def update_config(
    path: str | os.PathLike,
    *,
    layout: VocabularyLayout | None = None,
    vqvae: VQVAEConfig | None = None,
    normalization: ImageNormalization | None = None,
) -> Path:
    """Create or update ``icetk_config.json`` (atomically); parts not given are kept.

    ``icetk train-text`` writes the layout, ``icetk train-image`` the VQ-VAE part.
    """
    p = Path(path)
    cfg = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
    cfg.update({"format": "icetk", "format_version": FORMAT_VERSION})
    if layout is not None:
        cfg.update(layout=layout.to_dict(), text_model=TEXT_FILE)
    if vqvae is not None:
        norm = normalization or ImageNormalization()
        cfg.update(
            vqvae=vqvae.to_dict(),
            normalization={"mean": list(norm.mean), "std": list(norm.std)},
            image_model=IMAGE_FILE,
        )
    return atomic_write_bytes(p, json.dumps(cfg, indent=2, ensure_ascii=False).encode("utf-8"))


def read_config(
    path: Path,
) -> tuple[VocabularyLayout, VQVAEConfig, ImageNormalization, tuple[str, str]]:
    """Parse ``icetk_config.json``: (layout, VQ-VAE config, normalisation, (text file, image file))."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
        if "layout" not in cfg:
            raise ValueError("no 'layout' section (run `icetk train-text` into this folder)")
        if "vqvae" not in cfg:
            raise ValueError("no 'vqvae' section (run `icetk train-image` into this folder)")
        layout = VocabularyLayout.from_dict(cfg["layout"])
        vq_cfg = VQVAEConfig.from_dict(cfg["vqvae"])
        norm = ImageNormalization(**{k: tuple(v) for k, v in cfg.get("normalization", {}).items()})
        files = (cfg.get("text_model", TEXT_FILE), cfg.get("image_model", IMAGE_FILE))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"bad tokenizer config {path.resolve()}: {err}") from err
    return layout, vq_cfg, norm, files


class IceTokenizer:
    """Image / Chinese / English tokenizer over one global id space.

    Args:
        text: The text tokenizer (carries the layout).
        image: The image tokenizer; its codebook size must equal ``layout.num_image_tokens``.
    """

    def __init__(self, text: TextTokenizer, image: ImageTokenizer) -> None:
        if image.num_image_tokens != text.layout.num_image_tokens:
            raise ValueError(
                f"VQ-VAE has {image.num_image_tokens} codes but the layout expects "
                f"{text.layout.num_image_tokens} image tokens"
            )
        self.text = text
        self.image = image

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        device: torch.device | str = "cpu",
        vqvae_config: VQVAEConfig | None = None,
    ) -> IceTokenizer:
        """Load from a folder holding either our format or the official pair.

        Our format: ``icetk_config.json`` + ``text.model`` + ``image.safetensors``.
        Official: ``ice_text.model`` + ``ice_image.pt`` (the official layout is used).
        Nothing is downloaded.

        Args:
            path: The folder.
            device: Device of the VQ-VAE.
            vqvae_config: Only for the official pair: sizes of the VQ-VAE in ``ice_image.pt``
                (default ``VQVAEConfig.official()``).

        Raises:
            FileNotFoundError: neither set of files is there (names what was looked for).
            ValueError: a file is corrupt or of the wrong format (names the file).
        """
        root = Path(path)
        if (root / CONFIG_FILE).is_file():
            layout, vq_cfg, norm, files = read_config(root / CONFIG_FILE)
            text = TextTokenizer.from_file(root / files[0], layout)
            model = load_vqvae(root / files[1], vq_cfg)
            return cls(text, ImageTokenizer(model.to(device), norm))
        if (root / OFFICIAL_TEXT_FILE).is_file() or (root / OFFICIAL_IMAGE_FILE).is_file():
            layout = VocabularyLayout.official()
            text = TextTokenizer.from_file(root / OFFICIAL_TEXT_FILE, layout)
            model = load_official_vqvae(root / OFFICIAL_IMAGE_FILE, vqvae_config)
            return cls(text, ImageTokenizer(model.to(device)))
        raise FileNotFoundError(
            f"no tokenizer in {root.resolve()}: looked for {CONFIG_FILE} (with {TEXT_FILE}, "
            f"{IMAGE_FILE}) or the official {OFFICIAL_TEXT_FILE} + {OFFICIAL_IMAGE_FILE}"
        )

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write our format (config JSON, sentencepiece model, safetensors), each file atomically."""
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(root / TEXT_FILE, self.text.model_bytes)
        save_vqvae(self.image.model, root / IMAGE_FILE)
        update_config(
            root / CONFIG_FILE,
            layout=self.layout,
            vqvae=self.image.config,
            normalization=self.image.normalization,
        )
        return root

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> IceTokenizer:
        """Move / cast the VQ-VAE (e.g. ``.to("cuda", torch.float16)``); returns self."""
        self.image.model.to(device=device, dtype=dtype)
        return self

    # ------------------------------------------------------------------ layout
    @property
    def layout(self) -> VocabularyLayout:
        """The vocabulary layout."""
        return self.text.layout

    @property
    def num_image_tokens(self) -> int:
        """Number of image ids."""
        return self.layout.num_image_tokens

    @property
    def vocab_size(self) -> int:
        """Total number of ids (image + text + special)."""
        return self.layout.vocab_size

    @property
    def codebook(self) -> torch.Tensor:
        """(num_image_tokens, code_dim) float32 code vectors (for cluster sampling's K-means)."""
        return self.image.codebook

    def language_of(self, token_id: int) -> str:
        """'image', 'common', 'english', 'chinese', 'rare' or 'special'."""
        return self.layout.language_of(token_id)

    def allowed_ids(
        self, languages: Iterable[str] = ("common", "english"), *, vocab_size: int | None = None
    ) -> torch.Tensor:
        """(vocab_size,) bool sampling mask; see ``VocabularyLayout.allowed_ids``."""
        return self.layout.allowed_ids(languages, vocab_size=vocab_size)

    # ------------------------------------------------------------------ text
    def encode_text(self, text: str, *, language_tag: str | None = None) -> list[int]:
        """Text → global ids; see ``TextTokenizer.encode_text``."""
        return self.text.encode_text(text, language_tag=language_tag)

    def encode_texts(
        self, texts: Iterable[str], *, language_tag: str | None = None
    ) -> list[list[int]]:
        """Batch form of ``encode_text``."""
        return self.text.encode_texts(texts, language_tag=language_tag)

    def decode_text(self, ids: Iterable[int]) -> str:
        """Global text ids → text."""
        return self.text.decode_text(ids)

    def decode_texts(self, batch: Iterable[Iterable[int]]) -> list[str]:
        """Batch form of ``decode_text``."""
        return self.text.decode_texts(batch)

    # ------------------------------------------------------------------ image
    def encode_image(
        self,
        images: ImageInput | list[ImageInput],
        *,
        image_size: int | None = None,
        compression: int = 8,
    ) -> torch.Tensor:
        """Images → (B, h, w) ids; see ``ImageTokenizer.encode_image``."""
        return self.image.encode_image(images, image_size=image_size, compression=compression)

    def decode_image(
        self,
        ids: torch.Tensor | list,
        *,
        compression: int = 8,
        output: Literal["pt", "pil"] = "pt",
    ) -> torch.Tensor | list[Image.Image]:
        """Ids → (B, 3, H, W) unclamped tensor or PIL images; see ``ImageTokenizer.decode_image``."""
        return self.image.decode_image(ids, compression=compression, output=output)
