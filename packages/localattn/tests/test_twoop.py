"""similarity_2d / weighting_2d against explicit loops over SAT's definition (reference.md §6)."""

from __future__ import annotations

import pytest
import torch

import localattn


def loop_similarity(q, k, kh, kw, causal):
    n, _c, h, w = q.shape
    nk, _, hk, wk = k.shape
    slots = kh * kw // 2 + 1 if causal else kh * kw
    out = torch.empty(n, h, w, slots, dtype=torch.float64)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                for p in range(slots):
                    y = i // (h // hk) + p // kw - kh // 2
                    x = j // (w // wk) + p % kw - kw // 2
                    inside = 0 <= y < hk and 0 <= x < wk
                    kb = b // (n // nk)
                    out[b, i, j, p] = (q[b, :, i, j] * k[kb, :, y, x]).sum() if inside else -10000
    return out


def loop_weighting(v, a, kh, kw, causal):
    n, h, w, slots = a.shape
    nk, c, hk, wk = v.shape
    out = torch.zeros(n, c, h, w, dtype=torch.float64)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                for p in range(slots):
                    y = i // (h // hk) + p // kw - kh // 2
                    x = j // (w // wk) + p % kw - kw // 2
                    if 0 <= y < hk and 0 <= x < wk:
                        out[b, :, i, j] += a[b, i, j, p] * v[b // (n // nk), :, y, x]
    return out


TWO_OP = [
    pytest.param(2, 2, (5, 6), (5, 6), (3, 3), False, id="plain-3x3"),
    pytest.param(2, 2, (5, 6), (5, 6), (4, 3), False, id="even-4x3"),
    pytest.param(2, 2, (6, 5), (6, 5), (9, 5), True, id="causal-9x5"),
    pytest.param(4, 2, (6, 4), (3, 2), (3, 3), False, id="cross2-broadcast2"),
    pytest.param(3, 1, (6, 6), (2, 2), (5, 5), False, id="cross3-broadcast3"),
]


@pytest.mark.parametrize("n, nk, hw, khw, ks, causal", TWO_OP)
def test_similarity_and_weighting_match_loops(n, nk, hw, khw, ks, causal):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(n, 3, *hw, generator=g, dtype=torch.float64)
    k = torch.randn(nk, 3, *khw, generator=g, dtype=torch.float64)
    s = localattn.similarity_2d(q, k, ks, causal=causal)
    want = loop_similarity(q, k, *ks, causal)
    torch.testing.assert_close(s, want, rtol=0, atol=1e-12)
    assert (s == -10000).sum() == (want == -10000).sum() > 0  # out-of-grid is exactly -10000
    a = torch.randn(s.shape, generator=g, dtype=torch.float64)  # non-zero on out-of-grid slots
    o = localattn.weighting_2d(k, a, ks, causal=causal)
    torch.testing.assert_close(o, loop_weighting(k, a, *ks, causal), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n, nk, hw, khw, ks, causal", TWO_OP[2:])
def test_two_op_gradcheck(n, nk, hw, khw, ks, causal):
    g = torch.Generator().manual_seed(2)
    q = torch.randn(n, 2, *hw, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(nk, 2, *khw, generator=g, dtype=torch.float64, requires_grad=True)
    slots = ks[0] * ks[1] // 2 + 1 if causal else ks[0] * ks[1]
    a = torch.randn(n, *hw, slots, generator=g, dtype=torch.float64, requires_grad=True)
    fs = lambda q, k: localattn.similarity_2d(q, k, ks, causal=causal)  # noqa: E731
    fw = lambda v, a: localattn.weighting_2d(v, a, ks, causal=causal)  # noqa: E731
    assert torch.autograd.gradcheck(fs, (q, k), fast_mode=True)
    assert torch.autograd.gradcheck(fw, (k, a), fast_mode=True)
    # out-of-grid slots get no gradient, neither through the -10000 fill nor through weighting
    s = fs(q, k)
    (ga,) = torch.autograd.grad(fw(k, a).sum(), a)
    assert (ga[s.detach() == -10000] == 0).all()


def test_two_op_chain_equals_fused_op():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 2, 6, 6, 5, generator=g, dtype=torch.float64)
    k, v = (torch.randn(2, 2, 3, 3, 5, generator=g, dtype=torch.float64) for _ in range(2))
    # channel-first (N, C, H, W) with N = B·heads, q pre-scaled as CogView2 does
    cf = lambda x: x.flatten(0, 1).permute(0, 3, 1, 2)  # noqa: E731
    probs = localattn.similarity_2d(cf(q) / 5**0.5, cf(k), (5, 3)).softmax(-1)
    two_op = localattn.weighting_2d(cf(v), probs, (5, 3))
    fused = localattn.local_attention_2d(q, k, v, (5, 3))
    torch.testing.assert_close(two_op, cf(fused), rtol=0, atol=1e-12)


def test_half_precision_accumulates_in_float32():
    g = torch.Generator().manual_seed(4)
    q = torch.randn(1, 64, 4, 4, generator=g)
    k = torch.randn(1, 64, 4, 4, generator=g)
    s16 = localattn.similarity_2d(q.half(), k.half(), 3)
    assert s16.dtype == torch.float16
    ref = localattn.similarity_2d(q.half().float(), k.half().float(), 3).half()
    torch.testing.assert_close(s16, ref, rtol=0, atol=0)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: localattn.similarity_2d(torch.ones(2, 3, 4), torch.ones(2, 3, 4, 4), 3), "4-dim"),
        (lambda: localattn.similarity_2d(torch.ones(3, 2, 4, 4), torch.ones(2, 2, 4, 4), 3), "multiple"),
        (lambda: localattn.similarity_2d(torch.ones(2, 2, 4, 4), torch.ones(2, 3, 4, 4), 3), "channels"),
        (lambda: localattn.similarity_2d(torch.ones(2, 2, 5, 4), torch.ones(2, 2, 2, 4), 3), "multiple of"),
        (lambda: localattn.similarity_2d(torch.ones(2, 2, 4, 4), torch.ones(2, 2, 4, 4), 4, causal=True), "odd"),
        (lambda: localattn.weighting_2d(torch.ones(2, 2, 4, 4), torch.ones(2, 4, 4, 8), 3), "slots"),
        (lambda: localattn.similarity_2d(torch.ones(2, 2, 4, 4), torch.ones(2, 2, 4, 4).double(), 3), "must match"),
    ],
)  # fmt: skip
def test_two_op_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
