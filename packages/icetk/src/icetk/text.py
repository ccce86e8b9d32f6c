"""``TextTokenizer``: sentencepiece pieces placed at ``text_offset`` in the global id space."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import sentencepiece as spm

from icetk.checkpoint import require_file
from icetk.layout import VocabularyLayout


def _model_proto():
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as err:  # protobuf missing
        raise ImportError(
            "icetk needs protobuf to edit sentencepiece models: pip install protobuf"
        ) from err
    return sentencepiece_model_pb2.ModelProto()


def parse_model(data: bytes, source: str = "<bytes>"):
    """Parse a serialized sentencepiece ``ModelProto``; ValueError naming ``source`` if corrupt."""
    proto = _model_proto()
    try:
        proto.ParseFromString(data)
    except Exception as err:  # google.protobuf.message.DecodeError
        raise ValueError(f"{source} is not a sentencepiece model: {err}") from err
    if len(proto.pieces) == 0:
        raise ValueError(f"{source} is not a sentencepiece model: it has no pieces")
    return proto


def append_special_pieces(model: bytes, specials: Sequence[str], source: str = "<bytes>") -> bytes:
    """Append each special piece with score 0 (type NORMAL), as icetk does (reference §1.4)."""
    proto = parse_model(model, source)
    existing = {p.piece for p in proto.pieces}
    for token in specials:
        if token in existing:
            raise ValueError(
                f"{source} already has the piece {token!r}; specials must be new pieces"
            )
        proto.pieces.add(piece=token, score=0.0)
    return proto.SerializeToString()


class TextTokenizer:
    """Sentencepiece text tokenizer with global ids (``text_offset + piece id``).

    Args:
        model: Serialized sentencepiece model *without* the special tokens (e.g. the bytes of
            ``ice_text.model``); they are appended here, in the layout's order, with score 0.
        layout: The vocabulary layout; its ``num_text_tokens`` must equal the model's size.
        source: Name used in error messages (the file path).
    """

    def __init__(self, model: bytes, layout: VocabularyLayout, source: str = "<bytes>") -> None:
        n = len(parse_model(model, source).pieces)
        if n != layout.num_text_tokens:
            raise ValueError(
                f"{source} has {n} pieces but the layout expects num_text_tokens={layout.num_text_tokens}"
            )
        self.model_bytes = model
        self.layout = layout
        self.sp = spm.SentencePieceProcessor(
            model_proto=append_special_pieces(model, layout.special_tokens, source)
        )
        for token, gid in layout.special_token_ids.items():
            assert self.sp.PieceToId(token) + layout.text_offset == gid, token

    @classmethod
    def from_file(cls, path: str | os.PathLike, layout: VocabularyLayout) -> TextTokenizer:
        """Load a ``.model`` file (FileNotFoundError / ValueError naming the path)."""
        p = require_file(path, "sentencepiece text model")
        return cls(p.read_bytes(), layout, str(p.resolve()))

    def encode_text(self, text: str, *, language_tag: str | None = None) -> list[int]:
        """Text → global ids; literal special tokens in ``text`` become one id each.

        Args:
            text: Any Unicode string (CJK, emoji, full-width punctuation, newlines).
            language_tag: 'english' or 'chinese' to prepend ``<start_of_english>`` /
                ``<start_of_chinese>``; None for no tag.

        Returns:
            list of global ids.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids = [i + self.layout.text_offset for i in self.sp.EncodeAsIds(text)]
        if language_tag is not None:
            ids.insert(0, self.layout.language_tag_id(language_tag))
        return ids

    def encode_texts(
        self, texts: Iterable[str], *, language_tag: str | None = None
    ) -> list[list[int]]:
        """Batch form of ``encode_text``."""
        return [self.encode_text(t, language_tag=language_tag) for t in texts]

    def decode_text(self, ids: Iterable[int]) -> str:
        """Global text/special ids → text (ValueError for image ids or ids out of range)."""
        ids = [int(i) for i in ids]
        lo, hi = self.layout.text_offset, self.layout.vocab_size
        bad = [i for i in ids if not lo <= i < hi]
        if bad:
            raise ValueError(f"ids {bad[:10]} are not text ids; text ids are [{lo}, {hi})")
        return self.sp.DecodeIds([i - lo for i in ids])

    def decode_texts(self, batch: Iterable[Iterable[int]]) -> list[str]:
        """Batch form of ``decode_text``."""
        return [self.decode_text(ids) for ids in batch]

    def id_to_piece(self, token_id: int) -> str:
        """Piece string of a global text/special id."""
        return self.sp.IdToPiece(int(token_id) - self.layout.text_offset)

    def piece_to_id(self, piece: str) -> int:
        """Global id of a piece string (unknown pieces give ``unk``)."""
        return self.sp.PieceToId(piece) + self.layout.text_offset
