"""Neighborhood attention (NATTEN semantics): per-axis windows and the tile tables built on them.

Per axis of length ``L`` with kernel ``k`` and dilation ``d``, positions split into ``d`` groups
by ``i mod d``; a group holds ``L_g = ceil((L - r) / d)`` positions (``r`` its residue) and query
``i`` is number ``g = i // d`` in its group. Query ``g`` sees the group positions

- non-causal: ``start .. start + k - 1`` with ``start = clamp(g - k//2, 0, L_g - k)`` (borders
  shift the window inward; every query sees exactly ``k`` keys per axis);
- causal: ``max(g - k + 1, 0) .. g``.

An N-D neighborhood is the product of its axes' windows. A tile is a box of ``T_a`` consecutive
group positions of one dilation group per axis; the keys its queries can reach form a band of at
most ``T_a + k_a - 1`` group positions per axis. Tables (built once per problem and cached) name
each tile's queries, its band's keys and, per axis, each query's window bounds and each key's
group coordinate, so the window test is ``lo <= coordinate <= hi`` on every axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import torch

OPEN = 1 << 30
"""Window bound given to padding queries (past the grid): they see their whole band, which keeps
their softmax finite; their rows are never written."""


@dataclass(frozen=True)
class NASpec:
    """A neighborhood-attention problem: token grid, kernel, dilation and causal axes.

    Attributes:
        shape: The token grid ``(L_1, ..., L_n)``, n in {1, 2, 3}.
        kernel_size: Keys per axis, ``k_a >= 1``.
        dilation: Dilation per axis, ``d_a >= 1``, with ``k_a * d_a <= L_a``.
        is_causal: Causal axes (window ends at the query).
    """

    shape: tuple[int, ...]
    kernel_size: tuple[int, ...]
    dilation: tuple[int, ...]
    is_causal: tuple[bool, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.shape)

    @property
    def neighborhood(self) -> int:
        """Keys of an interior (non-causal) query: ``prod(k_a)``."""
        return math.prod(self.kernel_size)


def group_length(length: int, dilation: int, residue: int) -> int:
    """Positions ``residue, residue + d, ...`` below ``length``."""
    return (length - residue + dilation - 1) // dilation


def window_bounds(
    g: torch.Tensor, group_len: int | torch.Tensor, kernel: int, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last group position seen by group queries ``g`` (same shape; ``group_len``
    an int, or a tensor broadcastable to ``g`` as in FlexAttention's ``mask_mod``)."""
    if causal:
        return (g - kernel + 1).clamp(min=0), g
    start = (g - kernel // 2).clamp(min=0)
    start = torch.where(start > group_len - kernel, group_len - kernel, start)
    return start, start + kernel - 1


def num_tiles(spec: NASpec, tile: tuple[int, ...]) -> int:
    """Tiles of ``tile`` group positions per axis over every dilation group of ``spec``."""
    return math.prod(
        sum(-(-group_length(L, d, r) // t) for r in range(d))
        for L, d, t in zip(spec.shape, spec.dilation, tile, strict=True)
    )


@dataclass(frozen=True)
class AxisTiles:
    """One axis cut into tiles (``n`` tiles, ``T`` queries and ``K = T + k - 1`` keys each).

    Attributes:
        q_pos: (n, T) position of each tile query on the axis (0 on padding).
        q_ok: (n, T) bool, False on padding past the group's end.
        lo, hi: (n, T) the query's window in group coordinates (0, OPEN on padding).
        k_pos: (n, K) position of each band key on the axis (0 where invalid).
        k_crd: (n, K) group coordinate of each band key (-OPEN where invalid).
    """

    q_pos: torch.Tensor
    q_ok: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    k_pos: torch.Tensor
    k_crd: torch.Tensor


@lru_cache(maxsize=256)
def axis_tiles(length: int, kernel: int, dilation: int, causal: bool, tile: int) -> AxisTiles:
    """Tiles of ``tile`` group positions over every dilation group of one axis."""
    band = tile + kernel - 1
    rows: list[tuple[torch.Tensor, ...]] = []
    for r in range(dilation):
        n = group_length(length, dilation, r)
        for g0 in range(0, n, tile):
            g = g0 + torch.arange(tile)
            ok = g < n
            lo, hi = window_bounds(g.clamp(max=n - 1), n, kernel, causal)
            lo, hi = torch.where(ok, lo, 0), torch.where(ok, hi, OPEN)
            kg = lo[0] + torch.arange(band)  # band starts at the first query's window
            k_ok = kg < n
            rows.append(
                (
                    torch.where(ok, r + g * dilation, 0),
                    ok,
                    lo,
                    hi,
                    torch.where(k_ok, r + kg * dilation, 0),
                    torch.where(k_ok, kg, -OPEN),
                )
            )
    return AxisTiles(*(torch.stack(cols) for cols in zip(*rows, strict=True)))


@dataclass(frozen=True)
class NATables:
    """Tile tables of a whole problem (tiles = product of the axes' tiles, row-major).

    Attributes:
        q_index: (tiles, Qt) flat token index of each tile query (0 on padding).
        q_valid: (tiles, Qt) bool.
        k_index: (tiles, Kt) flat token index of each band key (0 where invalid).
        q_bounds: (tiles, Qt, 2·ndim) int32 ``lo_1, hi_1, lo_2, ...`` per query.
        k_coords: (tiles, Kt, ndim) int32 group coordinates per key (-OPEN where invalid).
        tile: Group positions per tile on each axis.
    """

    q_index: torch.Tensor
    q_valid: torch.Tensor
    k_index: torch.Tensor
    q_bounds: torch.Tensor
    k_coords: torch.Tensor
    tile: tuple[int, ...]

    def allowed(self) -> torch.Tensor:
        """(tiles, Qt, Kt) bool: the attended pairs (padding queries allow their whole band)."""
        c = self.k_coords.transpose(-1, -2)[:, None]  # (tiles, 1, ndim, Kt)
        lo, hi = self.q_bounds[..., 0::2, None], self.q_bounds[..., 1::2, None]  # (tiles,Qt,ndim,1)
        return ((c >= lo) & (c <= hi)).all(-2)


def _outer(parts: list[torch.Tensor], combine) -> torch.Tensor:
    """Combine per-axis (n_a, S_a) tables into (prod n_a, prod S_a), row-major in both."""
    out = parts[0]
    for p in parts[1:]:
        n0, s0 = out.shape
        n1, s1 = p.shape
        out = combine(out[:, None, :, None], p[None, :, None, :]).reshape(n0 * n1, s0 * s1)
    return out


@lru_cache(maxsize=64)
def _tables_cpu(spec: NASpec, tile: tuple[int, ...]) -> NATables:
    axes = [
        axis_tiles(L, k, d, c, t)
        for L, k, d, c, t in zip(
            spec.shape, spec.kernel_size, spec.dilation, spec.is_causal, tile, strict=True
        )
    ]
    strides = [math.prod(spec.shape[a + 1 :]) for a in range(spec.ndim)]
    q_index = _outer([ax.q_pos * s for ax, s in zip(axes, strides, strict=True)], torch.add)
    q_valid = _outer([ax.q_ok for ax in axes], torch.logical_and)
    k_index = _outer([ax.k_pos * s for ax, s in zip(axes, strides, strict=True)], torch.add)
    k_valid = _outer([ax.k_crd >= 0 for ax in axes], torch.logical_and)
    k_index = torch.where(k_valid, k_index, 0)  # invalid keys read token 0, masked out

    # per-axis values broadcast over the other axes: axis a's (n_a, S_a) table, others' ones
    def spread(tables: list[torch.Tensor], a: int) -> torch.Tensor:
        parts = [t if b == a else torch.zeros_like(t) for b, t in enumerate(tables)]
        return _outer(parts, torch.add)

    bounds = []
    for a in range(spec.ndim):
        bounds += [spread([ax.lo for ax in axes], a), spread([ax.hi for ax in axes], a)]
    coords = [spread([ax.k_crd for ax in axes], a) for a in range(spec.ndim)]
    k_coords = torch.stack(coords, -1).to(torch.int32)  # invalid keys: -OPEN on their axis
    return NATables(
        q_index, q_valid, k_index, torch.stack(bounds, -1).to(torch.int32), k_coords, tile
    )


@lru_cache(maxsize=64)
def _tables_on(spec: NASpec, tile: tuple[int, ...], device: torch.device) -> NATables:
    t = _tables_cpu(spec, tile)
    return NATables(
        t.q_index.to(device),
        t.q_valid.to(device),
        t.k_index.to(device),
        t.q_bounds.to(device),
        t.k_coords.to(device),
        tile,
    )


def na_tables(spec: NASpec, tile: tuple[int, ...], device: torch.device) -> NATables:
    """The tile tables of ``spec`` with ``tile`` group positions per tile, on ``device`` (cached)."""
    return _tables_cpu(spec, tile) if device.type == "cpu" else _tables_on(spec, tile, device)


@lru_cache(maxsize=64)
def na_additive_mask(
    spec: NASpec, tile: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(tiles, Qt, Kt) additive score mask: 0 where attended, -inf elsewhere (cached)."""
    tables = na_tables(spec, tile, device)
    allowed = tables.allowed() | ~tables.q_valid[:, :, None]
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(allowed, zero, torch.full((), float("-inf"), dtype=dtype, device=device))


TILE_CANDIDATES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256)


@lru_cache(maxsize=256)
def choose_tile(
    spec: NASpec,
    head_dim: int,
    min_queries: int = 16,
    max_queries: int = 256,
    overhead: int = 2048,
    score_passes: int = 6,
    gather_passes: int = 2,
) -> tuple[int, ...]:
    """Tile (group positions per axis) minimising score passes + band gathers + per-tile cost.

    The cost model is the one of the 2D tiles (``localattn._tiling.TilingConfig``).
    """
    per_axis = []
    for L, d in zip(spec.shape, spec.dilation, strict=True):
        longest = group_length(L, d, 0)
        per_axis.append(sorted({min(t, longest) for t in TILE_CANDIDATES}))
    floor = min(min_queries, spec.num_tokens)
    best: tuple[float, tuple[int, ...]] | None = None
    for tile in product(*per_axis):
        nq = math.prod(tile)
        if nq > max_queries or nq < floor:
            continue
        keys = math.prod(t + k - 1 for t, k in zip(tile, spec.kernel_size, strict=True))
        cost = num_tiles(spec, tile) * (
            nq * keys * score_passes + keys * head_dim * gather_passes + overhead
        )
        if best is None or cost < best[0]:
            best = (cost, tile)
    if best is None:  # a grid smaller than the tile floor: one tile per dilation group
        return tuple(group_length(L, d, 0) for L, d in zip(spec.shape, spec.dilation, strict=True))
    return best[1]
