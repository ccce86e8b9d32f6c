"""Train a bilingual sentencepiece model whose pieces are ordered into contiguous classes."""

from __future__ import annotations

import io
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from icetk.checkpoint import require_file
from icetk.layout import DEFAULT_SPECIAL_TOKENS, TEXT_CLASSES, VocabularyLayout
from icetk.text import parse_model

_CJK_RANGES = (
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x30FF),  # CJK symbols and punctuation, kana
    (0x3100, 0x31FF),  # bopomofo, kana ext
    (0x3400, 0x4DBF),  # CJK ext A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF00, 0xFFEF),  # half/full-width forms
    (0x20000, 0x3134F),  # CJK ext B-G
)


def is_cjk(ch: str) -> bool:
    """True for Han characters, kana, CJK and full-width punctuation."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def piece_class(piece: str, normal: bool) -> str:
    """Class of one piece: 'common' (specials, bytes, ASCII punctuation/digits, lone ``▁``),
    'chinese' (any CJK character), 'english' (Latin letters with ASCII punctuation/digits) or
    'rare' (anything else, e.g. emoji, other scripts)."""
    text = piece.replace("▁", "")
    if not normal or not text or all(c.isascii() and not c.isalpha() for c in text):
        return "common"
    if any(is_cjk(c) for c in text):
        return "chinese"
    if all(c.isascii() or unicodedata.name(c, "").startswith("LATIN") for c in text):
        return "english"
    return "rare"


@dataclass(frozen=True)
class TextTrainConfig:
    """Options of ``train_text_tokenizer`` (sentencepiece unigram).

    Attributes:
        vocab_size: Target piece count; with ``hard_vocab_limit=False`` a small corpus may give fewer.
        hard_vocab_limit: False lets small corpora train (sentencepiece stops early).
        character_coverage: Fraction of characters covered by pieces; the rest use byte fallback.
        normalization_rule_name: 'identity' keeps text as is (so decoding round-trips exactly,
            see docs); 'nmt_nfkc' is sentencepiece's default.
        num_threads: Trainer threads.
        max_sentence_length: Longest input line in bytes.
    """

    vocab_size: int = 8000
    hard_vocab_limit: bool = False
    character_coverage: float = 0.9995
    normalization_rule_name: str = "identity"
    num_threads: int = 2
    max_sentence_length: int = 16384


def _reorder_by_class(model: bytes) -> tuple[bytes, dict[str, int]]:
    """Stable-sort the pieces into common/english/chinese/rare; control pieces keep ids 0..3."""
    proto = parse_model(model)
    normal_type = type(proto.pieces[0]).NORMAL
    pieces = [(p.piece, p.score, p.type) for p in proto.pieces]
    classes = [piece_class(p, t == normal_type) for p, _, t in pieces]
    order = sorted(range(len(pieces)), key=lambda i: TEXT_CLASSES.index(classes[i]))
    if order[:4] != list(range(4)):
        raise AssertionError("control pieces moved")  # they are 'common' and first
    del proto.pieces[:]
    for i in order:
        piece, score, typ = pieces[i]
        proto.pieces.add(piece=piece, score=score, type=typ)
    counts = {c: classes.count(c) for c in TEXT_CLASSES}
    return proto.SerializeToString(), counts


def train_text_tokenizer(
    input_path: str | os.PathLike,
    *,
    num_image_tokens: int,
    config: TextTrainConfig | None = None,
) -> tuple[bytes, VocabularyLayout]:
    """Train a unigram sentencepiece model on a UTF-8 text file (one sentence per line).

    Pieces are reordered so that each class is a contiguous id range; ids 0-3 are ``<unk>``,
    ``<s>``, ``</s>``, ``<pad>`` as in the official model. Byte fallback is on, so any text
    round-trips.

    Args:
        input_path: Training text.
        num_image_tokens: Codebook size; text ids start right after the image ids.
        config: Trainer options.

    Returns:
        (serialized model without specials, layout with the class sizes).

    Raises:
        ValueError: ``vocab_size`` is smaller than the pieces the corpus requires (the control
            and byte-fallback pieces plus every character within ``character_coverage``).
    """
    cfg = config or TextTrainConfig()
    path = require_file(input_path, "text corpus")
    buf = io.BytesIO()
    try:
        _train(path, buf, cfg)
    except RuntimeError as err:
        found = re.search(r"smaller than required_chars\. (\d+) vs (\d+)", str(err))
        if found is None:
            raise
        raise ValueError(
            f"vocab_size {cfg.vocab_size} is too small for {path}: it needs at least "
            f"{found.group(2)} pieces (the byte-fallback and control pieces and every character "
            f"within character_coverage={cfg.character_coverage}); raise vocab_size or lower "
            "character_coverage"
        ) from err
    model, counts = _reorder_by_class(buf.getvalue())
    layout = VocabularyLayout.from_class_sizes(
        num_image_tokens,
        counts,
        pad_piece_id=3,
        unk_piece_id=0,
        special_tokens=DEFAULT_SPECIAL_TOKENS,
    )
    return model, layout


def _train(path: Path, buf: io.BytesIO, cfg: TextTrainConfig) -> None:
    spm.SentencePieceTrainer.train(
        input=str(path),
        model_writer=buf,
        model_type="unigram",
        vocab_size=cfg.vocab_size,
        hard_vocab_limit=cfg.hard_vocab_limit,
        character_coverage=cfg.character_coverage,
        normalization_rule_name=cfg.normalization_rule_name,
        remove_extra_whitespaces=False,
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        num_threads=cfg.num_threads,
        max_sentence_length=cfg.max_sentence_length,
        minloglevel=2,
    )


def write_corpus_sample(path: str | os.PathLike, lines: list[str]) -> Path:
    """Write ``lines`` as a UTF-8 training file (helper for tests and examples)."""
    p = Path(path)
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p
