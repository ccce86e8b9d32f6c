"""Shared type aliases and the window specification used by every backend."""

from __future__ import annotations

from dataclasses import dataclass

KernelSize = int | tuple[int, int]
"""A window size: ``k`` (a ``k×k`` window) or ``(kH, kW)`` (kH rows × kW columns)."""


@dataclass(frozen=True)
class WindowSpec:
    """A 2D attention window on the key grid, centred on the query's key-grid position.

    Slot ``p`` of the window is the offset ``(p // kw - radius_h, p % kw - radius_w)``; slots are
    row-major over a ``kh``-row × ``kw``-column window. With ``causal=True`` only the first
    ``kh*kw // 2 + 1`` slots are kept (the raster-order "past and self" half window).

    Attributes:
        kh: Window height (rows), >= 1.
        kw: Window width (columns), >= 1.
        causal: Keep only the raster-causal half window (odd ``kh`` and ``kw`` only).
    """

    kh: int
    kw: int
    causal: bool = False

    def __post_init__(self) -> None:
        for name, value in (("kh", self.kh), ("kw", self.kw)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"kernel_size {name} must be a positive int, got {value!r}")
        if self.causal and (self.kh % 2 == 0 or self.kw % 2 == 0):
            raise ValueError(
                f"causal=True needs odd window sizes, got kernel_size=({self.kh}, {self.kw}); "
                "even windows are allowed only with causal=False"
            )

    @classmethod
    def from_kernel_size(cls, kernel_size: KernelSize, causal: bool = False) -> WindowSpec:
        """Build a spec from ``k`` or ``(kH, kW)``; raises ValueError on anything else."""
        if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
            return cls(kernel_size, kernel_size, bool(causal))
        if isinstance(kernel_size, (tuple, list)) and len(kernel_size) == 2:
            return cls(kernel_size[0], kernel_size[1], bool(causal))
        raise ValueError(f"kernel_size must be an int or a pair (kH, kW), got {kernel_size!r}")

    @property
    def radius_h(self) -> int:
        """Rows above the centre: ``kh // 2`` (rows below: ``kh - 1 - radius_h``)."""
        return self.kh // 2

    @property
    def radius_w(self) -> int:
        """Columns left of the centre: ``kw // 2`` (right: ``kw - 1 - radius_w``)."""
        return self.kw // 2

    @property
    def num_slots(self) -> int:
        """P: ``kh*kw``, or ``kh*kw // 2 + 1`` when causal."""
        return self.kh * self.kw // 2 + 1 if self.causal else self.kh * self.kw

    def offsets(self) -> list[tuple[int, int]]:
        """The (dy, dx) offset of each kept slot, in slot order."""
        return [
            (p // self.kw - self.radius_h, p % self.kw - self.radius_w)
            for p in range(self.num_slots)
        ]
