"""The global id layout: image codes, classed text pieces and special tokens, as data."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import torch

#: Names of the four text classes, in id order.
TEXT_CLASSES: tuple[str, ...] = ("common", "english", "chinese", "rare")
#: Special tokens appended after the text pieces, in this order (the ids depend on it).
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = (
    "<start_of_image>",
    "<start_of_english>",
    "<start_of_chinese>",
)
_LANGUAGE_TAGS = {"english": "<start_of_english>", "chinese": "<start_of_chinese>"}


@dataclass(frozen=True)
class VocabularyLayout:
    """Where every kind of token lives in the single id space a CogView2 transformer sees.

    Global ids are ``[0, num_image_tokens)`` for image codes, then
    ``[text_offset, text_offset + num_text_tokens)`` for sentencepiece pieces (global id =
    ``text_offset + piece id``), split into four contiguous classes, then one id per special token.

    Attributes:
        num_image_tokens: Number of VQ-VAE codes (image ids ``[0, num_image_tokens)``).
        text_offset: Global id of sentencepiece piece 0 (``>= num_image_tokens``).
        num_text_tokens: Number of sentencepiece pieces, before the special tokens are appended.
        class_sizes: Number of pieces in each class of ``TEXT_CLASSES`` (common, english,
            chinese, rare); they are contiguous, in that order, and sum to ``num_text_tokens``.
        special_tokens: Special pieces appended to the sentencepiece model with score 0; the
            i-th gets global id ``text_offset + num_text_tokens + i``.
        pad_token: The padding piece (a regular sentencepiece piece).
        pad_id: Global id of ``pad_token``.
        unk_id: Global id of the unknown piece.
    """

    num_image_tokens: int
    text_offset: int
    num_text_tokens: int
    class_sizes: tuple[int, int, int, int]
    special_tokens: tuple[str, ...] = DEFAULT_SPECIAL_TOKENS
    pad_token: str = "<pad>"
    pad_id: int = field(default=-1)
    unk_id: int = field(default=-1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_sizes", tuple(int(s) for s in self.class_sizes))
        object.__setattr__(self, "special_tokens", tuple(self.special_tokens))
        if self.num_image_tokens < 1:
            raise ValueError(f"num_image_tokens must be >= 1, got {self.num_image_tokens}")
        if self.text_offset < self.num_image_tokens:
            raise ValueError(
                f"text_offset ({self.text_offset}) must be >= num_image_tokens "
                f"({self.num_image_tokens}): text ids may not overlap image ids"
            )
        if len(self.class_sizes) != len(TEXT_CLASSES) or min(self.class_sizes) < 0:
            raise ValueError(
                f"class_sizes must be 4 non-negative counts for {TEXT_CLASSES}, got {self.class_sizes}"
            )
        if sum(self.class_sizes) != self.num_text_tokens:
            raise ValueError(
                f"class_sizes {self.class_sizes} sum to {sum(self.class_sizes)}, "
                f"but num_text_tokens is {self.num_text_tokens}"
            )
        if len(set(self.special_tokens)) != len(self.special_tokens):
            raise ValueError(f"special_tokens must be distinct, got {self.special_tokens}")
        for name, value in (("pad_id", self.pad_id), ("unk_id", self.unk_id)):
            if value != -1 and not self.text_offset <= value < self.text_stop:
                raise ValueError(
                    f"{name}={value} is not a text id in [{self.text_offset}, {self.text_stop})"
                )

    # ---------------------------------------------------------------- presets and builders
    @classmethod
    def official(cls) -> VocabularyLayout:
        """The layout of the released ``ice_text.model`` + ``ice_image.pt`` (reference §1.1-1.2)."""
        return cls(
            num_image_tokens=20000,
            text_offset=20000,
            num_text_tokens=130000,
            class_sizes=(100, 63723, 61830, 4347),
            pad_id=20003,
            unk_id=20000,
        )

    @classmethod
    def from_class_sizes(
        cls,
        num_image_tokens: int,
        class_sizes: Mapping[str, int],
        *,
        pad_piece_id: int = -1,
        unk_piece_id: int = 0,
        special_tokens: Iterable[str] = DEFAULT_SPECIAL_TOKENS,
    ) -> VocabularyLayout:
        """Build a layout for one of our own tokenizers (text placed right after the image ids).

        Args:
            num_image_tokens: Codebook size of the VQ-VAE.
            class_sizes: Piece count per class name of ``TEXT_CLASSES`` (missing names count 0),
                as computed by ``icetk.train_text`` after ordering the pieces by class.
            pad_piece_id: Sentencepiece id of the pad piece, or -1 for none.
            unk_piece_id: Sentencepiece id of the unknown piece.
            special_tokens: Special pieces to append, in order.
        """
        unknown = set(class_sizes) - set(TEXT_CLASSES)
        if unknown:
            raise ValueError(f"unknown class names {sorted(unknown)}; allowed: {TEXT_CLASSES}")
        sizes = tuple(int(class_sizes.get(name, 0)) for name in TEXT_CLASSES)
        return cls(
            num_image_tokens=num_image_tokens,
            text_offset=num_image_tokens,
            num_text_tokens=sum(sizes),
            class_sizes=sizes,  # type: ignore[arg-type]
            special_tokens=tuple(special_tokens),
            pad_id=-1 if pad_piece_id < 0 else num_image_tokens + pad_piece_id,
            unk_id=num_image_tokens + unk_piece_id,
        )

    # ---------------------------------------------------------------- derived ranges
    @property
    def text_stop(self) -> int:
        """One past the last text-piece id."""
        return self.text_offset + self.num_text_tokens

    @property
    def vocab_size(self) -> int:
        """Total number of ids: image, gap (if any), text pieces and special tokens."""
        return self.text_stop + len(self.special_tokens)

    @property
    def class_ranges(self) -> dict[str, range]:
        """Global id range of each text class, e.g. ``{'english': range(20100, 83823), ...}``."""
        ranges, start = {}, self.text_offset
        for name, size in zip(TEXT_CLASSES, self.class_sizes, strict=True):
            ranges[name] = range(start, start + size)
            start += size
        return ranges

    @property
    def special_token_ids(self) -> dict[str, int]:
        """Global id of each special token, e.g. ``{'<start_of_image>': 150000, ...}``."""
        return {name: self.text_stop + i for i, name in enumerate(self.special_tokens)}

    def special_id(self, token: str) -> int:
        """Global id of one special token; ValueError naming the known ones otherwise."""
        ids = self.special_token_ids
        if token not in ids:
            raise ValueError(f"{token!r} is not a special token of this layout; known: {list(ids)}")
        return ids[token]

    @property
    def boi_id(self) -> int:
        """Id of ``<start_of_image>``."""
        return self.special_id("<start_of_image>")

    @property
    def boe_id(self) -> int:
        """Id of ``<start_of_english>``."""
        return self.special_id("<start_of_english>")

    @property
    def boc_id(self) -> int:
        """Id of ``<start_of_chinese>``."""
        return self.special_id("<start_of_chinese>")

    def language_tag_id(self, language: str) -> int:
        """Id of the tag that opens text of ``language`` ('english' → BOE, 'chinese' → BOC)."""
        if language not in _LANGUAGE_TAGS:
            raise ValueError(f"language must be one of {list(_LANGUAGE_TAGS)}, got {language!r}")
        return self.special_id(_LANGUAGE_TAGS[language])

    def language_of(self, token_id: int) -> str:
        """Class of one global id: 'image', 'common', 'english', 'chinese', 'rare' or 'special'.

        Ids in a gap between image and text ids, or beyond the vocabulary, raise ValueError.
        """
        token_id = int(token_id)
        if 0 <= token_id < self.num_image_tokens:
            return "image"
        for name, r in self.class_ranges.items():
            if token_id in r:
                return name
        if self.text_stop <= token_id < self.vocab_size:
            return "special"
        raise ValueError(
            f"id {token_id} is outside every range of this layout (vocab {self.vocab_size})"
        )

    def span_language(self, ids: Iterable[int]) -> str:
        """Language tag CogView2 pretraining gives a text span (reference §1.3).

        'english' if every id is below the first Chinese id (so common tokens count as English),
        else 'chinese'.
        """
        first_chinese = self.class_ranges["chinese"].start
        return "english" if all(int(i) < first_chinese for i in ids) else "chinese"

    def allowed_ids(
        self,
        languages: Iterable[str] = ("common", "english"),
        *,
        vocab_size: int | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Boolean mask of the ids generation may sample (the paper's language sampling mask).

        Args:
            languages: Class names to allow, from 'image', 'common', 'english', 'chinese',
                'rare', 'special'. English text is ``("common", "english")``.
            vocab_size: Length of the mask (default ``self.vocab_size``); may be larger, e.g.
                150010 for CogLM's padded embedding, with the extra ids disallowed.
            device: Device of the mask.

        Returns:
            (vocab_size,) bool tensor, True where the id may be sampled. Set logits to
            ``finfo.min`` where it is False.
        """
        size = self.vocab_size if vocab_size is None else int(vocab_size)
        if size < self.vocab_size:
            raise ValueError(f"vocab_size {size} is smaller than the layout's {self.vocab_size}")
        ranges = {"image": range(0, self.num_image_tokens), **self.class_ranges}
        ranges["special"] = range(self.text_stop, self.vocab_size)
        languages = [languages] if isinstance(languages, str) else list(languages)
        mask = torch.zeros(size, dtype=torch.bool, device=device)
        for name in languages:
            if name not in ranges:
                raise ValueError(f"unknown language class {name!r}; allowed: {list(ranges)}")
            mask[ranges[name].start : ranges[name].stop] = True
        return mask

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        """Plain-JSON form (lists instead of tuples)."""
        d = asdict(self)
        d["class_sizes"] = list(self.class_sizes)
        d["special_tokens"] = list(self.special_tokens)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> VocabularyLayout:
        """Inverse of ``to_dict``; ValueError on missing or unknown fields."""
        names = {f for f in cls.__dataclass_fields__}
        unknown, missing = (
            set(d) - names,
            {"num_image_tokens", "text_offset", "num_text_tokens", "class_sizes"} - set(d),
        )
        if unknown or missing:
            raise ValueError(
                f"bad layout dict: unknown fields {sorted(unknown)}, missing {sorted(missing)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_json(self) -> str:
        """JSON string; ``VocabularyLayout.from_json(layout.to_json()) == layout``."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> VocabularyLayout:
        """Parse ``to_json`` output."""
        return cls.from_dict(json.loads(text))
