"""Fused flash-style 2D local attention kernels (forward, backward) and their launchers.

One program handles a ``TILE_H × TILE_W`` tile of queries of one (batch, head). It walks the band
of key rows the tile's windows can reach, ``KEY_ROWS`` rows × ``KEY_COLS`` columns per step, then the
global tokens ``BLOCK_T`` at a time, with an online softmax; no H·W·P score tensor is ever stored.
The backward recomputes probabilities from the saved log-sum-exp; dQ is accumulated in registers,
dK/dV (and the global-token grads) with fp32 atomics.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _mm(a, b, DOT_FP32: tl.constexpr):
    """a @ b: exact fp32 (also the interpreter's bf16 workaround), or tensor-core in b's dtype."""
    if DOT_FP32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a.to(b.dtype), b)


@triton.jit
def _window_scores(
    q,
    k_ptrs,
    kr,
    kc,
    ci,
    cj,
    n_keys_ok,
    scale,
    HK,
    WK,
    KH: tl.constexpr,
    KW: tl.constexpr,
    RH: tl.constexpr,
    RW: tl.constexpr,
    SLOTS: tl.constexpr,
    offs_d,
    D,
    DOT_FP32: tl.constexpr,
):
    kvalid = n_keys_ok & (kr >= 0) & (kr < HK) & (kc >= 0) & (kc < WK)
    k = tl.load(k_ptrs, mask=kvalid[:, None] & (offs_d[None, :] < D), other=0.0)
    s = _mm(q, tl.trans(k), DOT_FP32)
    dy = kr[None, :] - ci[:, None] + RH
    dx = kc[None, :] - cj[:, None] + RW
    allowed = kvalid[None, :] & (dy >= 0) & (dy < KH) & (dx >= 0) & (dx < KW)
    allowed = allowed & (dy * KW + dx < SLOTS)
    return tl.where(allowed, s * scale, float("-inf")), k, kvalid


@triton.jit
def _tile_setup(
    H,
    W,
    AH: tl.constexpr,
    AW: tl.constexpr,
    RH: tl.constexpr,
    RW: tl.constexpr,
    KH: tl.constexpr,
    HK,
    TILE_H: tl.constexpr,
    TILE_W: tl.constexpr,
):
    tile = tl.program_id(0)
    n_tc = tl.cdiv(W, TILE_W)
    r0 = (tile // n_tc) * TILE_H
    c0 = (tile % n_tc) * TILE_W
    offs_m = tl.arange(0, TILE_H * TILE_W)
    qr = r0 + offs_m // TILE_W
    qc = c0 + offs_m % TILE_W
    q_ok = (qr < H) & (qc < W)
    row_lo = tl.maximum(r0 // AH - RH, 0)
    row_hi = tl.minimum((tl.minimum(r0 + TILE_H, H) - 1) // AH + (KH - 1 - RH) + 1, HK)
    col_lo = c0 // AW - RW
    return qr, qc, q_ok, row_lo, row_hi, col_lo


@triton.jit
def _softmax_step(s, v, m_i, l_i, acc, DOT_FP32: tl.constexpr):
    """One online-softmax step: fold scores ``s`` and values ``v`` into (m_i, l_i, acc)."""
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.exp(s - m_safe[:, None])
    alpha = tl.exp(m_i - m_safe)
    acc = acc * alpha[:, None] + _mm(p, v, DOT_FP32)
    l_i = l_i * alpha + tl.sum(p, 1)
    return m_new, l_i, acc


@triton.jit
def _grad_step(
    s, k, v, q, do, lse, delta, q_ok, dk_ptrs, dv_ptrs, mask, scale, DOT_FP32: tl.constexpr
):
    """Backward of one key block: adds its dK, dV atomically; returns (its dQ term, ds)."""
    p = tl.where(q_ok[:, None], tl.exp(s - lse[:, None]), 0.0)
    dp = _mm(do, tl.trans(v), DOT_FP32)
    ds = p * (dp - delta[:, None])
    tl.atomic_add(dk_ptrs, _mm(tl.trans(ds), q, DOT_FP32) * scale, mask=mask)
    tl.atomic_add(dv_ptrs, _mm(tl.trans(p), do, DOT_FP32), mask=mask)
    return _mm(ds, k, DOT_FP32), ds


@triton.jit
def _fwd_kernel(
    Q,
    K,
    V,
    EK,
    EV,
    EADD,
    OUT,
    LSE,
    scale,
    H,
    W,
    HK,
    WK,
    T,
    D,
    AH: tl.constexpr,
    AW: tl.constexpr,
    KH: tl.constexpr,
    KW: tl.constexpr,
    RH: tl.constexpr,
    RW: tl.constexpr,
    SLOTS: tl.constexpr,
    TILE_H: tl.constexpr,
    TILE_W: tl.constexpr,
    KEY_ROWS: tl.constexpr,
    KEY_COLS: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    bh = tl.program_id(1).to(tl.int64)
    qr, qc, q_ok, row_lo, row_hi, col_lo = _tile_setup(H, W, AH, AW, RH, RW, KH, HK, TILE_H, TILE_W)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    q_idx = qr * W + qc
    q = tl.load(
        Q + bh * H * W * D + q_idx[:, None] * D + offs_d[None, :],
        mask=q_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    ci, cj = qr // AH, qc // AW
    m_i = tl.full([TILE_H * TILE_W], float("-inf"), tl.float32)
    l_i = tl.zeros([TILE_H * TILE_W], tl.float32)
    acc = tl.zeros([TILE_H * TILE_W, BLOCK_D], tl.float32)
    offs_n = tl.arange(0, KEY_ROWS * KEY_COLS)
    kbase = bh * HK * WK * D
    for row in range(row_lo, row_hi, KEY_ROWS):
        kr = row + offs_n // KEY_COLS
        kc = col_lo + offs_n % KEY_COLS
        ptrs = kbase + (kr * WK + kc)[:, None] * D + offs_d[None, :]
        s, _k, kvalid = _window_scores(
            q,
            K + ptrs,
            kr,
            kc,
            ci,
            cj,
            kr < row_hi,
            scale,
            HK,
            WK,
            KH,
            KW,
            RH,
            RW,
            SLOTS,
            offs_d,
            D,
            DOT_FP32,
        )
        v = tl.load(V + ptrs, mask=kvalid[:, None] & d_ok[None, :], other=0.0)
        m_i, l_i, acc = _softmax_step(s, v, m_i, l_i, acc, DOT_FP32)
    offs_t = tl.arange(0, BLOCK_T)
    for t0 in range(0, T, BLOCK_T):
        t = t0 + offs_t
        t_ok = t < T
        eptrs = bh * T * D + t[:, None] * D + offs_d[None, :]
        ek = tl.load(EK + eptrs, mask=t_ok[:, None] & d_ok[None, :], other=0.0)
        add = tl.load(EADD + bh * T + t, mask=t_ok, other=float("-inf"))
        s = _mm(q, tl.trans(ek), DOT_FP32)
        s = s * scale + add[None, :]
        ev = tl.load(EV + eptrs, mask=t_ok[:, None] & d_ok[None, :], other=0.0)
        m_i, l_i, acc = _softmax_step(s, ev, m_i, l_i, acc, DOT_FP32)
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    tl.store(
        OUT + bh * H * W * D + q_idx[:, None] * D + offs_d[None, :],
        out.to(OUT.dtype.element_ty),
        mask=q_ok[:, None] & d_ok[None, :],
    )
    tl.store(LSE + bh * H * W + q_idx, m_i + tl.log(l_safe), mask=q_ok)


@triton.jit
def _bwd_kernel(
    Q,
    K,
    V,
    EK,
    EV,
    EADD,
    DO,
    LSE,
    DELTA,
    DQ,
    DK,
    DV,
    DEK,
    DEV,
    DEADD,
    scale,
    H,
    W,
    HK,
    WK,
    T,
    D,
    AH: tl.constexpr,
    AW: tl.constexpr,
    KH: tl.constexpr,
    KW: tl.constexpr,
    RH: tl.constexpr,
    RW: tl.constexpr,
    SLOTS: tl.constexpr,
    TILE_H: tl.constexpr,
    TILE_W: tl.constexpr,
    KEY_ROWS: tl.constexpr,
    KEY_COLS: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_FP32: tl.constexpr,
):
    bh = tl.program_id(1).to(tl.int64)
    qr, qc, q_ok, row_lo, row_hi, col_lo = _tile_setup(H, W, AH, AW, RH, RW, KH, HK, TILE_H, TILE_W)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    q_idx = qr * W + qc
    qmask = q_ok[:, None] & d_ok[None, :]
    qptrs = bh * H * W * D + q_idx[:, None] * D + offs_d[None, :]
    q = tl.load(Q + qptrs, mask=qmask, other=0.0)
    do = tl.load(DO + qptrs, mask=qmask, other=0.0)
    lse = tl.load(LSE + bh * H * W + q_idx, mask=q_ok, other=0.0)
    delta = tl.load(DELTA + bh * H * W + q_idx, mask=q_ok, other=0.0)
    ci, cj = qr // AH, qc // AW
    dq = tl.zeros([TILE_H * TILE_W, BLOCK_D], tl.float32)
    offs_n = tl.arange(0, KEY_ROWS * KEY_COLS)
    kbase = bh * HK * WK * D
    for row in range(row_lo, row_hi, KEY_ROWS):
        kr = row + offs_n // KEY_COLS
        kc = col_lo + offs_n % KEY_COLS
        ptrs = kbase + (kr * WK + kc)[:, None] * D + offs_d[None, :]
        s, k, kvalid = _window_scores(
            q,
            K + ptrs,
            kr,
            kc,
            ci,
            cj,
            kr < row_hi,
            scale,
            HK,
            WK,
            KH,
            KW,
            RH,
            RW,
            SLOTS,
            offs_d,
            D,
            DOT_FP32,
        )
        kmask = kvalid[:, None] & d_ok[None, :]
        v = tl.load(V + ptrs, mask=kmask, other=0.0)
        dq_k, _ds = _grad_step(
            s, k, v, q, do, lse, delta, q_ok, DK + ptrs, DV + ptrs, kmask, scale, DOT_FP32
        )
        dq += dq_k
    offs_t = tl.arange(0, BLOCK_T)
    for t0 in range(0, T, BLOCK_T):
        t = t0 + offs_t
        t_ok = t < T
        eptrs = bh * T * D + t[:, None] * D + offs_d[None, :]
        emask = t_ok[:, None] & d_ok[None, :]
        ek = tl.load(EK + eptrs, mask=emask, other=0.0)
        ev = tl.load(EV + eptrs, mask=emask, other=0.0)
        add = tl.load(EADD + bh * T + t, mask=t_ok, other=float("-inf"))
        s = _mm(q, tl.trans(ek), DOT_FP32) * scale + add[None, :]
        dq_t, ds = _grad_step(
            s, ek, ev, q, do, lse, delta, q_ok, DEK + eptrs, DEV + eptrs, emask, scale, DOT_FP32
        )
        dq += dq_t
        tl.atomic_add(DEADD + bh * T + t, tl.sum(ds, 0), mask=t_ok)
    tl.store(DQ + qptrs, (dq * scale).to(DQ.dtype.element_ty), mask=qmask)


def launch_forward(q, k, v, ek, ev, eadd, out, lse, scale, window, ratio, tiling, dot_fp32):
    """Run the forward kernel; tensors are contiguous (BH, ..., D) views, ``out``/``lse`` filled."""
    bh, h, w, d = q.shape
    hk, wk, t = k.shape[1], k.shape[2], ek.shape[1]
    grid = (triton.cdiv(h, tiling.tile_h) * triton.cdiv(w, tiling.tile_w), bh)
    _fwd_kernel[grid](
        q,
        k,
        v,
        ek,
        ev,
        eadd,
        out,
        lse,
        scale,
        h,
        w,
        hk,
        wk,
        t,
        d,
        **_constexprs(window, ratio, tiling, d, w),
        DOT_FP32=dot_fp32,
        num_warps=tiling.num_warps,
        num_stages=tiling.num_stages,
    )


def launch_backward(
    q, k, v, ek, ev, eadd, do, lse, delta, grads, scale, window, ratio, tiling, dot_fp32
):
    """Run the backward kernel; ``grads`` = (dq, dk, dv, dek, dev, deadd), dk.. zero fp32."""
    bh, h, w, d = q.shape
    hk, wk, t = k.shape[1], k.shape[2], ek.shape[1]
    grid = (triton.cdiv(h, tiling.tile_h) * triton.cdiv(w, tiling.tile_w), bh)
    _bwd_kernel[grid](
        q,
        k,
        v,
        ek,
        ev,
        eadd,
        do,
        lse,
        delta,
        *grads,
        scale,
        h,
        w,
        hk,
        wk,
        t,
        d,
        **_constexprs(window, ratio, tiling, d, w),
        DOT_FP32=dot_fp32,
        num_warps=tiling.num_warps,
        num_stages=tiling.num_stages,
    )


def _constexprs(window, ratio, tiling, d, w):
    ah, aw = ratio
    key_cols = triton.next_power_of_2((tiling.tile_w - 1) // aw + 1 + window.kw)
    return {
        "AH": ah,
        "AW": aw,
        "KH": window.kh,
        "KW": window.kw,
        "RH": window.radius_h,
        "RW": window.radius_w,
        "SLOTS": window.num_slots,
        "TILE_H": tiling.tile_h,
        "TILE_W": tiling.tile_w,
        "KEY_ROWS": max(tiling.key_rows, tiling.min_block_n // key_cols),
        "KEY_COLS": key_cols,
        "BLOCK_T": tiling.block_t,
        "BLOCK_D": max(triton.next_power_of_2(d), tiling.min_block_d),
    }
