"""Deterministic train / held-out split by emoji concept (never by style)."""

from __future__ import annotations

import hashlib
from typing import Literal

__all__ = ["SPLITS", "split_of"]

SPLITS: tuple[str, ...] = ("train", "heldout")
_HASH_DENOMINATOR = 2**64


def split_of(concept: str, *, seed: int, heldout_fraction: float) -> Literal["train", "heldout"]:
    """Which split an emoji concept belongs to.

    The decision hashes ``(seed, concept)`` only, so it does not depend on which styles or
    how many emoji a build includes: every style (and every skin tone) of a concept lands in
    the same split, and a held-out concept is unseen in training under any style.

    Args:
        concept: an :attr:`EmojiInfo.concept`, e.g. ``"1F44B"``.
        seed: split seed.
        heldout_fraction: expected fraction of concepts held out, in [0, 1).

    Raises:
        ValueError: ``heldout_fraction`` is outside [0, 1).
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    digest = hashlib.sha256(f"{seed}:{concept}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / _HASH_DENOMINATOR
    return "heldout" if u < heldout_fraction else "train"
