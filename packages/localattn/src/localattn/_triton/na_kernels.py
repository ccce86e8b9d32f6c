"""Fused flash-style neighborhood-attention kernels (forward, backward) over tile tables.

One program handles one tile of queries (``localattn._na_tiling``: a box of one dilation group,
up to ``BLOCK_M`` queries) of one (batch, head). It walks the tile's key band ``BLOCK_N`` slots
at a time — keys gathered through the table's token indices, the window tested per axis as
``lo <= coordinate <= hi`` — then the additional keys ``BLOCK_T`` at a time, with an online
softmax. Tensors are in NATTEN's layout, (B, N, heads, D) contiguous. The backward recomputes
probabilities from the saved log-sum-exp; dQ is accumulated in registers, dK/dV (and the
additional keys' grads) with fp32 atomics.
"""

from __future__ import annotations

import triton
import triton.language as tl

from localattn._na_tiling import OPEN as _OPEN_INT
from localattn._triton.kernels import _grad_step, _mm, _softmax_step

OPEN = tl.constexpr(_OPEN_INT)  # jitted code reads only constexpr globals


@triton.jit
def _axis_test(allowed, KC, slot, n_ok, lo, hi, A: tl.constexpr, NDIM: tl.constexpr):
    c = tl.load(KC + slot * NDIM + A, mask=n_ok, other=-OPEN)
    return allowed & (c[None, :] >= lo[:, None]) & (c[None, :] <= hi[:, None])


@triton.jit
def _tile_queries(QI, QV, QB, tile, QT, BLOCK_M: tl.constexpr, NDIM: tl.constexpr):
    """The tile's token indices, validity and per-axis window bounds (up to 3 axes)."""
    offs_m = tl.arange(0, BLOCK_M)
    m_ok = offs_m < QT
    slot = tile * QT + offs_m
    qi = tl.load(QI + slot, mask=m_ok, other=0)
    q_ok = tl.load(QV + slot, mask=m_ok, other=0) != 0
    b_ptr = QB + slot * (2 * NDIM)
    lo0 = tl.load(b_ptr, mask=m_ok, other=0)
    hi0 = tl.load(b_ptr + 1, mask=m_ok, other=OPEN)
    lo1 = tl.load(b_ptr + 2, mask=m_ok & (NDIM > 1), other=0)
    hi1 = tl.load(b_ptr + 3, mask=m_ok & (NDIM > 1), other=OPEN)
    lo2 = tl.load(b_ptr + 4, mask=m_ok & (NDIM > 2), other=0)
    hi2 = tl.load(b_ptr + 5, mask=m_ok & (NDIM > 2), other=OPEN)
    return qi, q_ok, lo0, hi0, lo1, hi1, lo2, hi2


@triton.jit
def _program_tile(Q, QI, QV, QB, N, HEADS, D, QT, NDIM: tl.constexpr, BLOCK_M: tl.constexpr,
                  BLOCK_D: tl.constexpr):  # fmt: skip
    """This program's tile, (batch, head), row offsets and queries (fwd and bwd alike)."""
    tile = tl.program_id(0).to(tl.int64)
    bh = tl.program_id(1).to(tl.int64)
    b, h = bh // HEADS, bh % HEADS
    HD = HEADS * D
    row0 = b * N * HD + h * D  # (b, token 0, h) in (B, N, heads, D)
    qi, q_ok, lo0, hi0, lo1, hi1, lo2, hi2 = _tile_queries(QI, QV, QB, tile, QT, BLOCK_M, NDIM)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    qptrs = row0 + qi[:, None] * HD + offs_d[None, :]
    qmask = q_ok[:, None] & d_ok[None, :]
    q = tl.load(Q + qptrs, mask=qmask, other=0.0)
    return (tile, b, h, HD, row0, qi, q_ok, lo0, hi0, lo1, hi1, lo2, hi2, offs_d, d_ok, qptrs,
            qmask, q)  # fmt: skip


@triton.jit
def _band_scores(q, K, KI, KC, tile, n0, KT, row0, HD, offs_d, d_ok, scale,
                 lo0, hi0, lo1, hi1, lo2, hi2,
                 BLOCK_N: tl.constexpr, NDIM: tl.constexpr, DOT_FP32: tl.constexpr):  # fmt: skip
    """Scores of the queries vs band slots n0 .. n0 + BLOCK_N (-inf outside the window)."""
    offs_n = n0 + tl.arange(0, BLOCK_N)
    n_ok = offs_n < KT
    slot = tile * KT + offs_n
    ki = tl.load(KI + slot, mask=n_ok, other=0)
    ptrs = row0 + ki[:, None] * HD + offs_d[None, :]
    kmask = n_ok[:, None] & d_ok[None, :]
    k = tl.load(K + ptrs, mask=kmask, other=0.0)
    s = _mm(q, tl.trans(k), DOT_FP32)
    allowed = _axis_test(n_ok[None, :], KC, slot, n_ok, lo0, hi0, 0, NDIM)
    if NDIM > 1:
        allowed = _axis_test(allowed, KC, slot, n_ok, lo1, hi1, 1, NDIM)
    if NDIM > 2:
        allowed = _axis_test(allowed, KC, slot, n_ok, lo2, hi2, 2, NDIM)
    return tl.where(allowed, s * scale, float("-inf")), k, ptrs, kmask


@triton.jit
def _na_fwd_kernel(Q, K, V, EK, EV, OUT, LSE, QI, QV, QB, KI, KC, scale, N, T, HEADS, D, QT, KT,
                   NDIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
                   DOT_FP32: tl.constexpr):  # fmt: skip
    (tile, b, h, HD, row0, qi, q_ok, lo0, hi0, lo1, hi1, lo2, hi2, offs_d, d_ok, qptrs, qmask,
     q) = _program_tile(Q, QI, QV, QB, N, HEADS, D, QT, NDIM, BLOCK_M, BLOCK_D)  # fmt: skip
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for n0 in range(0, KT, BLOCK_N):
        s, _k, ptrs, kmask = _band_scores(q, K, KI, KC, tile, n0, KT, row0, HD, offs_d, d_ok,
                                          scale, lo0, hi0, lo1, hi1, lo2, hi2,
                                          BLOCK_N, NDIM, DOT_FP32)  # fmt: skip
        v = tl.load(V + ptrs, mask=kmask, other=0.0)
        m_i, l_i, acc = _softmax_step(s, v, m_i, l_i, acc, DOT_FP32)
    offs_t = tl.arange(0, BLOCK_T)
    erow0 = b * T * HD + h * D
    for t0 in range(0, T, BLOCK_T):
        t = t0 + offs_t
        t_ok = t < T
        eptrs = erow0 + t[:, None] * HD + offs_d[None, :]
        emask = t_ok[:, None] & d_ok[None, :]
        ek = tl.load(EK + eptrs, mask=emask, other=0.0)
        s = tl.where(t_ok[None, :], _mm(q, tl.trans(ek), DOT_FP32) * scale, float("-inf"))
        ev = tl.load(EV + eptrs, mask=emask, other=0.0)
        m_i, l_i, acc = _softmax_step(s, ev, m_i, l_i, acc, DOT_FP32)
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    tl.store(OUT + qptrs, (acc / l_safe[:, None]).to(OUT.dtype.element_ty), mask=qmask)
    tl.store(LSE + (b * N + qi) * HEADS + h, m_i + tl.log(l_safe), mask=q_ok)


@triton.jit
def _na_bwd_kernel(Q, K, V, EK, EV, DO, LSE, DELTA, DQ, DK, DV, DEK, DEV,
                   QI, QV, QB, KI, KC, scale, N, T, HEADS, D, QT, KT,
                   NDIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
                   DOT_FP32: tl.constexpr):  # fmt: skip
    (tile, b, h, HD, row0, qi, q_ok, lo0, hi0, lo1, hi1, lo2, hi2, offs_d, d_ok, qptrs, qmask,
     q) = _program_tile(Q, QI, QV, QB, N, HEADS, D, QT, NDIM, BLOCK_M, BLOCK_D)  # fmt: skip
    do = tl.load(DO + qptrs, mask=qmask, other=0.0)
    stat = (b * N + qi) * HEADS + h
    lse = tl.load(LSE + stat, mask=q_ok, other=0.0)
    delta = tl.load(DELTA + stat, mask=q_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for n0 in range(0, KT, BLOCK_N):
        s, k, ptrs, kmask = _band_scores(q, K, KI, KC, tile, n0, KT, row0, HD, offs_d, d_ok,
                                         scale, lo0, hi0, lo1, hi1, lo2, hi2,
                                         BLOCK_N, NDIM, DOT_FP32)  # fmt: skip
        v = tl.load(V + ptrs, mask=kmask, other=0.0)
        dq_k, _ds = _grad_step(s, k, v, q, do, lse, delta, q_ok, DK + ptrs, DV + ptrs, kmask,
                               scale, DOT_FP32)  # fmt: skip
        dq += dq_k
    offs_t = tl.arange(0, BLOCK_T)
    erow0 = b * T * HD + h * D
    for t0 in range(0, T, BLOCK_T):
        t = t0 + offs_t
        t_ok = t < T
        eptrs = erow0 + t[:, None] * HD + offs_d[None, :]
        emask = t_ok[:, None] & d_ok[None, :]
        ek = tl.load(EK + eptrs, mask=emask, other=0.0)
        ev = tl.load(EV + eptrs, mask=emask, other=0.0)
        s = tl.where(t_ok[None, :], _mm(q, tl.trans(ek), DOT_FP32) * scale, float("-inf"))
        dq_t, _ds = _grad_step(s, ek, ev, q, do, lse, delta, q_ok, DEK + eptrs, DEV + eptrs,
                               emask, scale, DOT_FP32)  # fmt: skip
        dq += dq_t
    tl.store(DQ + qptrs, (dq * scale).to(DQ.dtype.element_ty), mask=qmask)


def _launch(kernel, tensors, tables, q, ek, scale, tiling, dot_fp32) -> None:
    b, n, heads, d = q.shape
    num_tiles, qt = tables.q_index.shape
    kt = tables.k_index.shape[1]
    kernel[(num_tiles, b * heads)](
        *tensors,
        tables.q_index, tables.q_valid, tables.q_bounds, tables.k_index, tables.k_coords,
        scale, n, ek.shape[1], heads, d, qt, kt,
        NDIM=tables.k_coords.shape[-1],
        BLOCK_M=max(triton.next_power_of_2(qt), tiling.min_block_n),
        BLOCK_N=tiling.na_block_n,
        BLOCK_T=tiling.block_t,
        BLOCK_D=max(triton.next_power_of_2(d), tiling.min_block_d),
        DOT_FP32=dot_fp32,
        num_warps=tiling.num_warps,
        num_stages=tiling.num_stages,
    )  # fmt: skip


def launch_na_forward(q, k, v, ek, ev, out, lse, tables, scale, tiling, dot_fp32) -> None:
    """Forward over contiguous (B, N, heads, D) tensors; fills ``out`` and ``lse`` (B, N, heads)."""
    _launch(_na_fwd_kernel, (q, k, v, ek, ev, out, lse), tables, q, ek, scale, tiling, dot_fp32)


def launch_na_backward(q, k, v, ek, ev, do, lse, delta, grads, tables, scale, tiling,
                       dot_fp32) -> None:  # fmt: skip
    """Backward; ``grads`` = (dq, dk, dv, dek, dev) with dk.. zero-filled fp32 buffers."""
    tensors = (q, k, v, ek, ev, do, lse, delta, *grads)
    _launch(_na_bwd_kernel, tensors, tables, q, ek, scale, tiling, dot_fp32)
