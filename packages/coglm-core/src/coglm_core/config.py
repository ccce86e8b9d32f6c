"""`CogLMConfig`: the architecture and the token/position layout of a CogLM model."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_text


@dataclass(frozen=True)
class CogLMConfig:
    """Architecture plus the token-id and position-id layout of CogLM (reference.md §1.2, §2.1, §2.4).

    Token ids are configuration values: this package never imports a tokenizer. The defaults are
    the released 6B model with the icetk vocabulary layout.

    Attributes:
        num_layers: Transformer layers.
        hidden_size: Model width H.
        num_attention_heads: Heads; ``hidden_size`` must be divisible by it.
        vocab_size: Rows of ``word_embeddings`` (150010 for the release).
        max_sequence_length: Rows of ``position_embeddings`` (1024 for the release).
        inner_hidden_size: MLP width; ``None`` means ``4 * hidden_size``.
        layernorm_epsilon: LayerNorm epsilon.
        hidden_dropout: Dropout after the embedding sum, after ``dense`` and after the MLP.
        attention_dropout: Dropout on the attention probabilities.
        init_std: Standard deviation of the normal initialisation (§2.5).
        num_image_tokens: Image ids are ``[0, num_image_tokens)``.
        image_grid_size: Side of the low-resolution token grid (20 → 400 tokens).
        boi_position: Position id of BOI in text-to-image sequences.
        image_position_offset: Position id of image token 0 (image token k has offset + k).
        boi_id: Global id of ``<start_of_image>``.
        boe_id: Global id of ``<start_of_english>``.
        boc_id: Global id of ``<start_of_chinese>``.
        pad_id: Global id of ``<pad>``, the separator of pretraining samples (§8.1).
        english_id_range: Half-open id range logged as English. The release logs
            ``20100 < label < 83823``, hence the lower bound 20101.
        chinese_id_range: Half-open id range logged as Chinese; its start is also the
            BOE/BOC threshold of the caption task (all ids below it → BOE).
        sequence_length: Tokens per pretraining sample (512).
        patch_size: Side of the masked image patches of the caption task (4).
    """

    num_layers: int = 48
    hidden_size: int = 3072
    num_attention_heads: int = 48
    vocab_size: int = 150010
    max_sequence_length: int = 1024
    inner_hidden_size: int | None = None
    layernorm_epsilon: float = 1e-5
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    init_std: float = 0.02
    num_image_tokens: int = 20000
    image_grid_size: int = 20
    boi_position: int = 512
    image_position_offset: int = 513
    boi_id: int = 150000
    boe_id: int = 150001
    boc_id: int = 150002
    pad_id: int = 20003
    english_id_range: tuple[int, int] = (20101, 83823)
    chinese_id_range: tuple[int, int] = (83823, 145653)
    sequence_length: int = 512
    patch_size: int = 4

    def __post_init__(self) -> None:
        # JSON gives lists; keep the dataclass hashable and comparable.
        for name in ("english_id_range", "chinese_id_range"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        problems = []
        for name in ("num_layers", "hidden_size", "num_attention_heads", "vocab_size"):
            if getattr(self, name) <= 0:
                problems.append(f"{name}={getattr(self, name)} must be > 0")
        if self.hidden_size % max(self.num_attention_heads, 1):
            problems.append(
                f"hidden_size={self.hidden_size} must be divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if self.inner_hidden_size is not None and self.inner_hidden_size <= 0:
            problems.append(f"inner_hidden_size={self.inner_hidden_size} must be > 0 or None")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name}={getattr(self, name)} must be in [0, 1)")
        last_image_position = self.image_position_offset + self.num_image_positions - 1
        if max(self.boi_position, last_image_position) >= self.max_sequence_length:
            problems.append(
                f"image positions reach {last_image_position} (boi_position={self.boi_position}) "
                f"but max_sequence_length={self.max_sequence_length}"
            )
        for name in ("boi_id", "boe_id", "boc_id", "pad_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                problems.append(f"{name}={getattr(self, name)} must be in [0, {self.vocab_size})")
        if self.num_image_tokens > self.vocab_size:
            problems.append(f"num_image_tokens={self.num_image_tokens} exceeds vocab_size")
        if not 0 < self.patch_size <= self.image_grid_size:
            problems.append(
                f"patch_size={self.patch_size} must be in [1, image_grid_size={self.image_grid_size}]"
            )
        if problems:
            raise ValueError("invalid CogLMConfig: " + "; ".join(problems))

    # ----------------------------------------------------------------------------- derived values
    @property
    def head_dim(self) -> int:
        """Per-head width ``hidden_size // num_attention_heads`` (64 for the release)."""
        return self.hidden_size // self.num_attention_heads

    @property
    def mlp_hidden_size(self) -> int:
        """MLP inner width (``inner_hidden_size`` or ``4 * hidden_size``)."""
        return self.inner_hidden_size or 4 * self.hidden_size

    @property
    def num_image_positions(self) -> int:
        """Image tokens per low-resolution image (``image_grid_size ** 2``, 400)."""
        return self.image_grid_size**2

    # ----------------------------------------------------------------------------- presets
    @classmethod
    def cogview2_6b(cls, **overrides: Any) -> CogLMConfig:
        """The released 6B CogLM (48 layers, H=3072, 48 heads, vocab 150010, 1024 positions)."""
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides: Any) -> CogLMConfig:
        """6 layers, H=256, 8 heads, with the full icetk vocabulary and position layout."""
        return cls(**{"num_layers": 6, "hidden_size": 256, "num_attention_heads": 8, **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> CogLMConfig:
        """2 layers, H=32, 4 heads and a miniature vocabulary/layout, for tests and examples.

        Vocabulary of 128 ids: image ids ``[0, 64)``, a 4x4 image grid, text ids ``[64, 125)``,
        BOI/BOE/BOC = 125/126/127, pad = 67; samples of 32 tokens; positions 0..63 with BOI at 40.
        """
        base: dict[str, Any] = {
            "num_layers": 2,
            "hidden_size": 32,
            "num_attention_heads": 4,
            "vocab_size": 128,
            "max_sequence_length": 64,
            "num_image_tokens": 64,
            "image_grid_size": 4,
            "boi_position": 40,
            "image_position_offset": 41,
            "boi_id": 125,
            "boe_id": 126,
            "boc_id": 127,
            "pad_id": 67,
            "english_id_range": (69, 96),
            "chinese_id_range": (96, 120),
            "sequence_length": 32,
            "patch_size": 2,
        }
        return cls(**{**base, **overrides})

    # ----------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary of every field."""
        out = dataclasses.asdict(self)
        for name in ("english_id_range", "chinese_id_range"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CogLMConfig:
        """Inverse of `to_dict`; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown CogLMConfig fields {unknown}; allowed: {sorted(names)}")
        return cls(**data)

    def to_json(self) -> str:
        """JSON text of `to_dict` (sorted keys)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CogLMConfig:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON atomically to ``path``."""
        atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CogLMConfig:
        """Read a file written by `save`."""
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
