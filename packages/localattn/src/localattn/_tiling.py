"""Tile plans: the grid cut into query tiles, each with the band of keys its windows can reach.

A tile covers ``tile_rows × tile_cols`` key-grid centres, i.e. ``(tile_rows·ah) × (tile_cols·aw)``
queries; its key band is ``(tile_rows + kH - 1) × (tile_cols + kW - 1)`` key positions. Which
(query, band slot) pairs fall inside the window is the same for every tile; only the grid borders
differ. The reference backend gathers tiles with index tables built here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from localattn.types import WindowSpec


@dataclass(frozen=True)
class TilingConfig:
    """Knobs of the tile-size search (cost model: padded score entries plus a per-tile cost).

    Attributes:
        min_tile_queries: Smallest tile worth a batched matmul (unless the grid is smaller).
        max_tile_queries: Largest tile considered.
        tile_overhead: Fixed cost of one tile, in score entries.
        score_passes: Memory passes over each score entry (mask, softmax, products).
        gather_passes: Copies of each gathered key row per head-dim element (keys and values).
        chunk_output_ratio: Temporary elements (scores, probabilities, gathered tiles) at once,
            as a fraction of the output's elements: the workspace grows linearly with the
            problem (flash-attention style) instead of being a fixed block that dwarfs a small
            grid's output.
        min_chunk_elements: Floor of that budget (smaller chunks cost more in per-op overhead
            than they save).
        chunk_elements: Cap of that budget on CPU.
        accelerator_chunk_elements: The cap on accelerators (fewer, larger launches).
    """

    min_tile_queries: int = 16
    max_tile_queries: int = 256
    tile_overhead: int = 2048
    score_passes: int = 6
    gather_passes: int = 2
    chunk_output_ratio: float = 0.25
    min_chunk_elements: int = 1 << 18
    chunk_elements: int = 1 << 22
    accelerator_chunk_elements: int = 1 << 26

    def chunk_budget(self, output_elements: int, device: torch.device) -> int:
        """Temporary elements one chunk of tiles may hold, for an output of that many elements."""
        cap = self.chunk_elements if device.type == "cpu" else self.accelerator_chunk_elements
        wanted = int(self.chunk_output_ratio * output_elements)
        return max(min(wanted, cap), min(self.min_chunk_elements, cap))


DEFAULT_TILING = TilingConfig()


@dataclass(frozen=True)
class TilePlan:
    """How a (H, W) query grid over a (Hk, Wk) key grid is cut into tiles.

    Attributes:
        h, w: Query grid. hk, wk: Key grid. window: The window.
        tile_rows, tile_cols: Key-grid centres per tile along each axis.
    """

    h: int
    w: int
    hk: int
    wk: int
    window: WindowSpec
    tile_rows: int
    tile_cols: int

    @property
    def ah(self) -> int:
        return self.h // self.hk

    @property
    def aw(self) -> int:
        return self.w // self.wk

    @property
    def n_tile_rows(self) -> int:
        return math.ceil(self.hk / self.tile_rows)

    @property
    def n_tile_cols(self) -> int:
        return math.ceil(self.wk / self.tile_cols)

    @property
    def num_tiles(self) -> int:
        return self.n_tile_rows * self.n_tile_cols

    @property
    def query_tile(self) -> tuple[int, int]:
        """(rows, cols) of queries in one tile."""
        return self.tile_rows * self.ah, self.tile_cols * self.aw

    @property
    def band(self) -> tuple[int, int]:
        """(rows, cols) of key positions one tile can see."""
        return self.tile_rows + self.window.kh - 1, self.tile_cols + self.window.kw - 1

    @property
    def queries_per_tile(self) -> int:
        return self.query_tile[0] * self.query_tile[1]

    @property
    def keys_per_tile(self) -> int:
        return self.band[0] * self.band[1]


def choose_plan(
    q_hw: tuple[int, int],
    k_hw: tuple[int, int],
    window: WindowSpec,
    num_extra: int = 0,
    head_dim: int = 64,
    config: TilingConfig = DEFAULT_TILING,
) -> TilePlan:
    """Pick the tile size minimising score passes + key/value gathers + per-tile overhead."""
    (h, w), (hk, wk) = q_hw, k_hw
    ah, aw = h // hk, w // wk
    best: tuple[float, int, int] | None = None
    min_q = min(config.min_tile_queries, h * w)
    for tr in range(1, hk + 1):
        for tc in range(1, wk + 1):
            nq = tr * ah * tc * aw
            if nq > config.max_tile_queries and (tr, tc) != (1, 1):
                continue
            if nq < min_q:
                continue
            keys = (tr + window.kh - 1) * (tc + window.kw - 1) + num_extra
            tiles = math.ceil(hk / tr) * math.ceil(wk / tc)
            band = keys - num_extra
            cost = tiles * (
                nq * keys * config.score_passes
                + band * head_dim * config.gather_passes
                + config.tile_overhead
            )
            if best is None or cost < best[0]:
                best = (cost, tr, tc)
    if best is None:
        best = (0.0, hk, wk)
    return TilePlan(h, w, hk, wk, window, best[1], best[2])


@dataclass(frozen=True)
class TileTables:
    """Index tables of a plan on one device.

    Attributes:
        q_index: (tiles, Qt) flat query index of each tile slot (0 for padding).
        q_valid: (tiles, Qt) bool, False on padding slots past the grid.
        k_index: (tiles, Kt) flat key index of each band slot (0 where outside the key grid).
        k_valid: (tiles, Kt) bool, False outside the key grid.
        in_window: (Qt, Kt) bool, band slot inside the query's window (same for all tiles).
    """

    q_index: torch.Tensor
    q_valid: torch.Tensor
    k_index: torch.Tensor
    k_valid: torch.Tensor
    in_window: torch.Tensor

    def allowed(self) -> torch.Tensor:
        """(tiles, Qt, Kt) bool: attended pairs; padding query rows allow every slot."""
        inside = self.in_window[None] & self.k_valid[:, None, :]
        return inside | ~self.q_valid[:, :, None]


def _axis_tables(n_tiles: int, tile: int, ratio: int, n_keys: int, k: int, radius: int):
    """Per-axis query/key coordinates: (tiles, tile·ratio) queries and (tiles, tile+k-1) keys."""
    t = torch.arange(n_tiles)[:, None]
    q = t * tile * ratio + torch.arange(tile * ratio)[None]
    key = t * tile - radius + torch.arange(tile + k - 1)[None]
    return q, key


@lru_cache(maxsize=64)
def _tables_cpu(plan: TilePlan) -> TileTables:
    win = plan.window
    qr, kr = _axis_tables(plan.n_tile_rows, plan.tile_rows, plan.ah, plan.hk, win.kh, win.radius_h)
    qc, kc = _axis_tables(plan.n_tile_cols, plan.tile_cols, plan.aw, plan.wk, win.kw, win.radius_w)
    # (tile_r, tile_c, Qr, Qc) -> (tiles, Qt)
    qrv, qcv = qr < plan.h, qc < plan.w
    q_valid = (qrv[:, None, :, None] & qcv[None, :, None, :]).reshape(plan.num_tiles, -1)
    q_index = (qr[:, None, :, None] * plan.w + qc[None, :, None, :]).reshape(plan.num_tiles, -1)
    q_index = torch.where(q_valid, q_index, torch.zeros_like(q_index))
    krv, kcv = (kr >= 0) & (kr < plan.hk), (kc >= 0) & (kc < plan.wk)
    k_valid = (krv[:, None, :, None] & kcv[None, :, None, :]).reshape(plan.num_tiles, -1)
    k_index = (kr[:, None, :, None] * plan.wk + kc[None, :, None, :]).reshape(plan.num_tiles, -1)
    k_index = torch.where(k_valid, k_index, torch.zeros_like(k_index))
    # window test in tile-local coordinates: slot (dy, dx) = band - centre, row-major index < P
    qh, qw = plan.query_tile
    bh, bw = plan.band
    cy = (torch.arange(qh) // plan.ah)[:, None, None, None]
    cx = (torch.arange(qw) // plan.aw)[None, :, None, None]
    dy = torch.arange(bh)[None, None, :, None] - cy
    dx = torch.arange(bw)[None, None, None, :] - cx
    inside = (dy >= 0) & (dy < win.kh) & (dx >= 0) & (dx < win.kw)
    inside &= dy * win.kw + dx < win.num_slots
    in_window = inside.reshape(qh * qw, bh * bw)
    return TileTables(q_index, q_valid, k_index, k_valid, in_window)


@lru_cache(maxsize=64)
def _tables_on(plan: TilePlan, device: torch.device) -> TileTables:
    return TileTables(*(t.to(device) for t in vars(_tables_cpu(plan)).values()))


def tile_tables(plan: TilePlan, device: torch.device) -> TileTables:
    """The index tables of ``plan`` on ``device`` (built once per plan and device, then cached)."""
    return _tables_cpu(plan) if device.type == "cpu" else _tables_on(plan, device)


@lru_cache(maxsize=64)
def additive_mask(plan: TilePlan, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(tiles, Qt, Kt) additive score mask: 0 where attended, -inf elsewhere (cached)."""
    allowed = tile_tables(plan, device).allowed()
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(allowed, zero, torch.full((), float("-inf"), dtype=dtype, device=device))
