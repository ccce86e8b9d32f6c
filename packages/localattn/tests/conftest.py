"""Test helpers for localattn: an independent dense reference and random-input factories.

TRITON_INTERPRET must be set before any ``@triton.jit`` decorator runs, so it is set here, at the
very top, and only when there is no CUDA device (on a GPU machine the kernels compile for real).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from types import SimpleNamespace

import torch

if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

import pytest


def window_mask(h: int, w: int, hk: int, wk: int, kh: int, kw: int, causal: bool) -> torch.Tensor:
    """(H·W, H'·W') bool, built by explicit loops over queries and window slots (reference.md §6.1)."""
    ah, aw = h // hk, w // wk
    rh, rw = kh // 2, kw // 2
    slots = kh * kw // 2 + 1 if causal else kh * kw
    mask = torch.zeros(h * w, hk * wk, dtype=torch.bool)
    for i in range(h):
        for j in range(w):
            for p in range(slots):
                y, x = i // ah + p // kw - rh, j // aw + p % kw - rw
                if 0 <= y < hk and 0 <= x < wk:
                    mask[i * w + j, y * wk + x] = True
    return mask


def dense_attention(q, k, v, kernel_size, causal=False, extra_k=None, extra_v=None,
                    extra_bias=None, extra_mask=None, scale=None):  # fmt: skip
    """Dense masked attention in float64 over window + globals; returns (out, lse)."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    b, heads, h, w, d = q.shape
    hk, wk = k.shape[2], k.shape[3]
    scale = d**-0.5 if scale is None else scale
    qf = q.double().reshape(b, heads, h * w, d)
    kf = k.double().reshape(b, heads, hk * wk, d)
    vf = v.double().reshape(b, heads, hk * wk, d)
    allowed = window_mask(h, w, hk, wk, kh, kw, causal).to(q.device).expand(b, heads, -1, -1)
    s = qf @ kf.transpose(-1, -2) * scale
    if extra_k is not None:
        t = extra_k.shape[2]
        s_ext = qf @ extra_k.double().transpose(-1, -2) * scale
        if extra_bias is not None:
            s_ext = s_ext + extra_bias.double().expand(b, heads, t)[:, :, None, :]
        s = torch.cat([s, s_ext], -1)
        vf = torch.cat([vf, extra_v.double()], 2)
        em = torch.ones(b, t, dtype=torch.bool) if extra_mask is None else extra_mask
        allowed = torch.cat([allowed, em[:, None, None, :].expand(b, heads, h * w, t)], -1)
    s = s.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(s, -1)
    out = torch.softmax(s, -1) @ vf
    return out.reshape(b, heads, h, w, d), lse.reshape(b, heads, h, w)


def make_inputs(b, heads, hw, khw, d, t=0, *, dtype=torch.float64, seed=0, bias_shape=None,
                masked=False, requires_grad=True):  # fmt: skip
    """Random (q, k, v) and, with t > 0, kwargs for global tokens (bias, padding mask)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype).requires_grad_(requires_grad)

    q, k, v = rnd(b, heads, *hw, d), rnd(b, heads, *khw, d), rnd(b, heads, *khw, d)
    extra = {}
    if t:
        extra = {"extra_k": rnd(b, heads, t, d), "extra_v": rnd(b, heads, t, d)}
        if bias_shape is not None:
            extra["extra_bias"] = rnd(*bias_shape)
        if masked:
            mask = torch.rand(b, t, generator=g) > 0.4
            mask[:, 0] = True
            mask[-1, :] = False  # one batch item with every global token padded away
            extra["extra_mask"] = mask
    return q, k, v, extra


def grad_inputs(q, k, v, extra):
    """Every tensor that requires grad, in a fixed order."""
    return [x for x in (q, k, v, *extra.values()) if x.requires_grad]


@pytest.fixture
def dense():
    """``dense(q, k, v, kernel_size, causal, **extra)``; ``dense.window_mask`` is the mask builder."""
    dense_attention.window_mask = window_mask
    return dense_attention


@pytest.fixture
def inputs():
    return make_inputs


@pytest.fixture
def grads_of():
    return grad_inputs


@dataclass(frozen=True)
class Case:
    """One attention pattern: q grid, key grid, window, causal, globals (T, bias shape, padding)."""

    hw: tuple[int, int]
    khw: tuple[int, int]
    kernel_size: int | tuple[int, int]
    causal: bool = False
    t: int = 0
    bias_shape: tuple[int, ...] | None = None
    padded: bool = False


B, HEADS = 2, 2
CASES = {
    "odd-3x3": Case((6, 7), (6, 7), 3),
    "even-4x2": Case((5, 6), (5, 6), (4, 2)),
    "cogview-9x5-globals": Case((8, 7), (8, 7), (9, 5), False, 4, (1, HEADS, 4), True),
    "wider-than-half-grid": Case((4, 5), (4, 5), (7, 9)),
    "causal-5x3-globals": Case((6, 5), (6, 5), (5, 3), True, 3, (B, 1, 3)),
    "cross-ratio2": Case((8, 6), (4, 3), 3),
    "cross-ratio3-globals": Case((9, 6), (3, 2), 5, False, 3, (B, HEADS, 3), True),
    "cross-3x2-causal": Case((6, 4), (2, 2), 3, True),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests taking a ``case`` argument run once per pattern in CASES."""
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", list(CASES.values()), ids=list(CASES))


# ----------------------------------------------------------------- neighborhood attention (NA)
# An independent dense reference written from the definition. Two formulations of the per-axis
# window: ``axis_neighbors`` follows the definition literally (window start clamped into the
# dilation group) and ``natten_axis_mask`` is NATTEN's own (the window centre clamped to
# [k//2, L_g - 1 - (k//2 + k%2 - 1)], as in NATTEN's FlexAttention mask, stride 1). Tests check
# that they agree, then use the first for dense float64 attention.


def axis_neighbors(length: int, k: int, d: int, causal: bool) -> list[set[int]]:
    """For each position, the set of positions it attends to along one axis (loops)."""
    out = []
    for i in range(length):
        r, g = i % d, i // d
        n = len(range(r, length, d))
        if causal:
            group = range(max(g - k + 1, 0), g + 1)
        else:
            start = max(g - k // 2, 0)
            if g + (k - 1 - k // 2) >= n:
                start = n - k
            group = range(start, start + k)
        out.append({r + j * d for j in group})
    return out


def natten_axis_mask(length: int, k: int, d: int, causal: bool) -> torch.Tensor:
    """(L, L) bool mask in NATTEN's formulation (window centre clamped; stride 1)."""
    i = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    gi, gj, same = i // d, j // d, (i % d) == (j % d)
    n = length // d + ((i % d) < (length % d)).long()  # this group's length
    if causal:
        return same & (gi - gj >= 0) & (gi - gj < k)
    left, right = k // 2, k // 2 + (k % 2 - 1)
    centre = torch.minimum(torch.maximum(gi, torch.full_like(gi, left)), n - 1 - right)
    return same & (gj >= centre - left) & (gj <= centre + right)


def neighborhood_mask(shape, kernel, dilation, causal) -> torch.Tensor:
    """(N, N) bool: the product of the axes' neighbor sets, row-major flattening."""
    axes = [axis_neighbors(*a) for a in zip(shape, kernel, dilation, causal, strict=True)]
    coords = list(itertools.product(*(range(n) for n in shape)))
    index = {c: i for i, c in enumerate(coords)}
    mask = torch.zeros(len(coords), len(coords), dtype=torch.bool)
    for qc in coords:
        for kc in itertools.product(*(axes[a][qc[a]] for a in range(len(shape)))):
            mask[index[qc], index[kc]] = True
    return mask


def dense_na(q, k, v, kernel, dilation, causal, scale=None, extra_k=None, extra_v=None):
    """Dense float64 neighborhood attention; q/k/v (B, *spatial, h, D). Returns (out, lse)."""
    b, *shape, h, d = q.shape
    scale = d**-0.5 if scale is None else scale
    n = 1
    for s in shape:
        n *= s

    def heads_first(x):
        return x.double().reshape(b, -1, h, d).transpose(1, 2)

    qf, kf, vf = heads_first(q), heads_first(k), heads_first(v)
    allowed = neighborhood_mask(shape, kernel, dilation, causal).to(q.device)
    s = (qf @ kf.transpose(-1, -2) * scale).masked_fill(~allowed, float("-inf"))
    if extra_k is not None:
        ek, ev = heads_first(extra_k), heads_first(extra_v)
        s = torch.cat([s, qf @ ek.transpose(-1, -2) * scale], -1)
        vf = torch.cat([vf, ev], 2)
    lse = torch.logsumexp(s, -1)
    out = torch.softmax(s, -1) @ vf
    return out.transpose(1, 2).reshape(q.shape), lse.transpose(1, 2).reshape(b, *shape, h)


@pytest.fixture
def na_ref():
    """The dense neighborhood-attention reference helpers."""
    return SimpleNamespace(
        axis_neighbors=axis_neighbors,
        natten_axis_mask=natten_axis_mask,
        neighborhood_mask=neighborhood_mask,
        dense_na=dense_na,
    )
