"""Layouts of the two super-resolution models as frozen configs (reference.md §4.1, §5.1)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


@dataclass(frozen=True)
class DSRConfig:
    """Direct super-resolution layout (``layout = [96, 496, 4096]`` in the release).

    Attributes:
        text_slots: Sequence slots before the low-resolution image (text left-padded with id 0
            at position 0); a text must leave at least ``min_pad`` of them as padding.
        min_pad: Padding slots required before the text (the release asserts ``n_pad >= 1``,
            so it accepts at most 95 text tokens).
        low_grid: Side of the low-resolution token grid (20).
        high_grid: Side of the high-resolution token grid (60); a multiple of ``low_grid``.
        cross_kernel: (rows, cols) window on the low-resolution grid (5×5).
        local_kernel: (rows, cols) window on the high-resolution grid (9×5).
    """

    text_slots: int = 96
    min_pad: int = 1
    low_grid: int = 20
    high_grid: int = 60
    cross_kernel: tuple[int, int] = (5, 5)
    local_kernel: tuple[int, int] = (9, 5)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cross_kernel", _pair(self.cross_kernel))
        object.__setattr__(self, "local_kernel", _pair(self.local_kernel))
        if self.text_slots <= self.min_pad or self.min_pad < 0:
            raise ValueError(
                f"text_slots={self.text_slots} must exceed min_pad={self.min_pad} >= 0"
            )
        if self.low_grid <= 0 or self.high_grid % self.low_grid:
            raise ValueError(
                f"high_grid={self.high_grid} must be a positive multiple of low_grid={self.low_grid}"
            )

    @property
    def max_text_len(self) -> int:
        """Longest text accepted (95 for the release)."""
        return self.text_slots - self.min_pad

    @property
    def level0_len(self) -> int:
        """Tokens of level 0: text slots + low-resolution grid (496)."""
        return self.text_slots + self.low_grid**2

    @property
    def num_high(self) -> int:
        """High-resolution tokens (3600)."""
        return self.high_grid**2

    @property
    def seq_len(self) -> int:
        """Model input length (4096)."""
        return self.level0_len + self.num_high

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        d = dataclasses.asdict(self)
        d["kind"] = "dsr"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DSRConfig:
        """Inverse of `to_dict`."""
        d = {k: v for k, v in d.items() if k != "kind"}
        return cls(**d)


@dataclass(frozen=True)
class ITERSRConfig:
    """Iterative super-resolution layout (``layout = [16, 3616]`` in the release).

    Attributes:
        text_slots: Text slots (the first ``text_slots`` text tokens are kept, left-padded).
        high_grid: Side of the high-resolution grid (60); a multiple of 6 (the LoPAR tile).
        local_kernel: (rows, cols) window on the high-resolution grid (9×5).
    """

    text_slots: int = 16
    high_grid: int = 60
    local_kernel: tuple[int, int] = (9, 5)

    def __post_init__(self) -> None:
        object.__setattr__(self, "local_kernel", _pair(self.local_kernel))
        if self.text_slots <= 0 or self.high_grid <= 0 or self.high_grid % 6:
            raise ValueError(
                f"text_slots={self.text_slots} must be > 0 and high_grid={self.high_grid} a "
                "positive multiple of 6 (the LoPAR tile)"
            )

    @property
    def num_high(self) -> int:
        """High-resolution tokens (3600)."""
        return self.high_grid**2

    @property
    def seq_len(self) -> int:
        """Model input length (3616)."""
        return self.text_slots + self.num_high

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        d = dataclasses.asdict(self)
        d["kind"] = "itersr"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ITERSRConfig:
        """Inverse of `to_dict`."""
        d = {k: v for k, v in d.items() if k != "kind"}
        return cls(**d)


def config_to_json(config: DSRConfig | ITERSRConfig) -> str:
    """JSON text of a super-resolution config."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def config_from_json(text: str) -> DSRConfig | ITERSRConfig:
    """Parse `config_to_json` output (the ``kind`` field picks the class)."""
    d = json.loads(text)
    kind = d.get("kind")
    if kind == "dsr":
        return DSRConfig.from_dict(d)
    if kind == "itersr":
        return ITERSRConfig.from_dict(d)
    raise ValueError(f"super-resolution config kind must be 'dsr' or 'itersr', got {kind!r}")
