"""The id fields a ``CogLMConfig`` takes from a tokenizer's ``VocabularyLayout``."""

from __future__ import annotations

from typing import Any

from icetk import VocabularyLayout


def layout_pad_id(layout: VocabularyLayout) -> int:
    """The layout's pad id, or its first text id when it has none."""
    return layout.pad_id if layout.pad_id >= 0 else layout.text_offset


def coglm_id_fields(layout: VocabularyLayout) -> dict[str, Any]:
    """``CogLMConfig`` keyword arguments that must match the tokenizer's ids."""
    ranges = layout.class_ranges
    return {
        "vocab_size": layout.vocab_size,
        "num_image_tokens": layout.num_image_tokens,
        "boi_id": layout.boi_id,
        "boe_id": layout.boe_id,
        "boc_id": layout.boc_id,
        "pad_id": layout_pad_id(layout),
        "english_id_range": (ranges["english"].start, ranges["english"].stop),
        "chinese_id_range": (ranges["chinese"].start, ranges["chinese"].stop),
    }
