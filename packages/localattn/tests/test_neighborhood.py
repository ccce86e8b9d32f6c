"""na1d / na2d / na3d against a dense float64 reference written from NATTEN's definition."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import localattn
from localattn._na_tiling import NASpec, choose_tile, na_tables

# (spatial shape, kernel, dilation, causal, additional keys)
NA_CASES = {
    "1d-odd": ((13,), (5,), (1,), (False,), 0),
    "1d-even-dilated": ((13,), (4,), (2,), (False,), 0),
    "1d-causal-dilated-extra": ((11,), (3,), (3,), (True,), 3),
    "1d-full-length": ((6,), (6,), (1,), (False,), 0),
    "2d-odd": ((7, 8), (3, 5), (1, 1), (False, False), 0),
    "2d-even-dilated-causal-col": ((7, 9), (3, 4), (2, 2), (False, True), 0),
    "2d-causal-extra": ((6, 6), (3, 3), (1, 1), (True, True), 2),
    "2d-dilation-uneven-groups": ((9, 10), (2, 3), (4, 3), (False, False), 0),
    "3d-mixed": ((4, 5, 6), (3, 2, 3), (1, 2, 1), (True, False, False), 0),
    "3d-dilated-extra": ((5, 6, 4), (2, 3, 2), (2, 1, 2), (False, False, True), 2),
}


def _inputs(shape, extra, dtype=torch.float64, seed=0, b=2, h=2, d=4):
    g = torch.Generator().manual_seed(seed)

    def rnd(*s):
        return torch.randn(*s, generator=g, dtype=dtype).requires_grad_(True)

    q, k, v = (rnd(b, *shape, h, d) for _ in range(3))
    ek, ev = (rnd(b, extra, h, d), rnd(b, extra, h, d)) if extra else (None, None)
    return q, k, v, ek, ev


AXES = [
    (length, k, d)
    for length in (1, 2, 5, 9, 12)
    for k in (1, 2, 3, 4, 5)
    for d in (1, 2, 3)
    if k * d <= length
]


@pytest.mark.parametrize(("length", "k", "d"), AXES)
@pytest.mark.parametrize("causal", [False, True])
def test_reference_windows_are_nattens(na_ref, length, k, d, causal):
    """The literal definition and NATTEN's centre-clamped formulation give the same windows."""
    literal = na_ref.axis_neighbors(length, k, d, causal)
    mask = na_ref.natten_axis_mask(length, k, d, causal)
    assert [set(torch.nonzero(row).flatten().tolist()) for row in mask] == literal
    if not causal:  # borders shift the window inward: always exactly k keys
        assert all(len(s) == k for s in literal)


def test_even_kernel_interior_window(na_ref):
    """Even k: k//2 keys before the query and k-1-k//2 after it (NATTEN's window_right)."""
    assert na_ref.axis_neighbors(20, 4, 1, False)[10] == {8, 9, 10, 11}
    assert na_ref.axis_neighbors(20, 4, 2, False)[10] == {6, 8, 10, 12}


@pytest.mark.parametrize("na_case", list(NA_CASES.values()), ids=list(NA_CASES))
def test_tables_give_the_neighborhood(na_ref, na_case):
    """Every (query, key) pair the tile tables allow is exactly the dense neighborhood."""
    shape, kernel, dilation, causal, _ = na_case
    spec = NASpec(shape, kernel, dilation, causal)
    for tile in {choose_tile(spec, 4), tuple(1 for _ in shape), tuple(3 for _ in shape)}:
        tab = na_tables(spec, tile, torch.device("cpu"))
        allowed = tab.allowed() & tab.q_valid[:, :, None]
        got = torch.zeros(spec.num_tokens, spec.num_tokens, dtype=torch.bool)
        t, qi, ki = torch.nonzero(allowed, as_tuple=True)
        got[tab.q_index[t, qi], tab.k_index[t, ki]] = True
        covered = torch.zeros(spec.num_tokens, dtype=torch.long)
        covered.index_add_(0, tab.q_index[tab.q_valid], torch.ones_like(tab.q_index[tab.q_valid]))
        assert covered.eq(1).all(), "every query in exactly one tile"
        assert torch.equal(got, na_ref.neighborhood_mask(shape, kernel, dilation, causal)), tile


@pytest.mark.parametrize("na_case", list(NA_CASES.values()), ids=list(NA_CASES))
def test_matches_dense_with_grads(na_ref, na_case):
    shape, kernel, dilation, causal, extra = na_case
    q, k, v, ek, ev = _inputs(shape, extra, seed=len(shape) + extra)
    out, lse = localattn.neighborhood_attention(
        q, k, v, kernel, dilation, causal, additional_keys=ek, additional_values=ev,
        return_lse=True, backend="reference",
    )  # fmt: skip
    ref_out, ref_lse = na_ref.dense_na(q, k, v, kernel, dilation, causal, extra_k=ek, extra_v=ev)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(lse, ref_lse, atol=1e-10, rtol=1e-10)
    g = torch.Generator().manual_seed(7)
    w_out, w_lse = (
        torch.randn(out.shape, generator=g, dtype=out.dtype),
        torch.randn(lse.shape, generator=g, dtype=lse.dtype),
    )
    leaves = [x for x in (q, k, v, ek, ev) if x is not None]
    got = torch.autograd.grad((out * w_out).sum() + (lse * w_lse).sum(), leaves)
    want = torch.autograd.grad((ref_out * w_out).sum() + (ref_lse * w_lse).sum(), leaves)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize(
    ("dtype", "atol"), [(torch.float32, 2e-5), (torch.bfloat16, 3e-2), (torch.float16, 3e-3)]
)
def test_low_precision_follows_float64(na_ref, dtype, atol):
    shape, kernel, dilation, causal, extra = NA_CASES["2d-even-dilated-causal-col"]
    q, k, v, _, _ = _inputs(shape, extra, dtype=dtype, seed=5, d=8)
    out = localattn.na2d(q, k, v, kernel, dilation, causal, backend="reference")
    assert out.dtype == dtype
    ref, _ = na_ref.dense_na(q, k, v, kernel, dilation, causal)
    torch.testing.assert_close(out.double(), ref, atol=atol, rtol=atol)
    out.float().square().sum().backward()
    assert all(x.grad is not None and x.grad.dtype == dtype for x in (q, k, v))


def test_gradcheck_small():
    q, k, v, ek, ev = _inputs((4, 3), 1, seed=3, b=1, h=1, d=2)

    def f(q, k, v, ek, ev):
        return localattn.na2d(q, k, v, (3, 2), (1, 1), (False, True), additional_keys=ek,
                              additional_values=ev, return_lse=True, backend="reference")  # fmt: skip

    assert torch.autograd.gradcheck(f, (q, k, v, ek, ev))


def test_entry_points_agree(na_ref):
    """na1d/na2d/na3d equal neighborhood_attention on their rank; a 1-long axis is 1D less."""
    q, k, v, _, _ = _inputs((6, 7), 0, seed=9)
    a = localattn.na2d(q, k, v, 3, 2, (True, False))
    b = localattn.neighborhood_attention(q, k, v, 3, 2, (True, False))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    q3, k3, v3 = (x[:, None] for x in (q, k, v))  # (B, 1, X, Y, h, D)
    c = localattn.na3d(q3, k3, v3, (1, 3, 3), (1, 2, 2), (False, True, False))
    torch.testing.assert_close(c[:, 0], a, atol=1e-12, rtol=1e-12)
    q1, k1, v1 = (x[:, 0] for x in (q, k, v))  # first row as a 1D sequence
    d1 = localattn.na1d(q1, k1, v1, 3, 2)
    ref, _ = na_ref.dense_na(q1, k1, v1, (3,), (2,), (False,))
    torch.testing.assert_close(d1, ref, atol=1e-12, rtol=1e-12)


def test_lse_merges_with_other_attention():
    """merge_attentions joins the neighborhood and the additional keys into one softmax."""
    q, k, v, ek, ev = _inputs((6, 5), 3, seed=4)
    joint = localattn.na2d(q, k, v, 3, additional_keys=ek, additional_values=ev)
    o1, l1 = localattn.na2d(q, k, v, 3, return_lse=True)
    s = torch.einsum("bxyhd,bnhd->bxyhn", q, ek) * q.shape[-1] ** -0.5
    o2 = torch.einsum("bxyhn,bnhd->bxyhd", s.softmax(-1), ev)
    merged, _ = localattn.merge_attentions([o1, o2], [l1, s.logsumexp(-1)])
    torch.testing.assert_close(merged, joint, atol=1e-12, rtol=1e-12)


def test_one_tile_per_chunk(na_ref, monkeypatch):
    """Rows are written straight into their places chunk by chunk, padding tiles included."""
    from localattn.backends import _tiled

    monkeypatch.setattr(_tiled, "_chunks", lambda q_index, kt, qf, t: [
        (i, i + 1) for i in range(q_index.shape[0])
    ])  # fmt: skip
    shape, kernel, dilation, causal, extra = NA_CASES["3d-dilated-extra"]
    q, k, v, ek, ev = _inputs(shape, extra, seed=2)
    out = localattn.na3d(q, k, v, kernel, dilation, causal, additional_keys=ek,
                         additional_values=ev)  # fmt: skip
    out.sum().backward()
    ref, _ = na_ref.dense_na(q, k, v, kernel, dilation, causal, extra_k=ek, extra_v=ev)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)


def test_torch_compile_fullgraph_forward_and_backward():
    q, k, v, _, _ = _inputs((6, 7), 0, dtype=torch.float32, seed=1)

    def f(q, k, v):
        return localattn.na2d(q, k, v, (3, 5), (2, 1), (False, True), backend="reference")

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    got = compiled(q, k, v)
    got.square().sum().backward()
    grads = [x.grad.clone() for x in (q, k, v)]
    for x in (q, k, v):
        x.grad = None
    want = f(q, k, v)
    want.square().sum().backward()
    torch.testing.assert_close(got, want)
    for a, x in zip(grads, (q, k, v), strict=True):
        torch.testing.assert_close(a, x.grad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kernel_size": 4, "dilation": 2}, "axis 1: kernel_size * dilation = 4 * 2 = 8 exceeds"),
        ({"kernel_size": (3, 3, 3)}, "kernel_size must be a int or a tuple of 2 ints"),
        ({"kernel_size": 3, "is_causal": (True,)}, "is_causal must be a bool or a tuple of 2"),
        ({"kernel_size": 0}, "axis 0: kernel_size and dilation must be >= 1"),
        ({"kernel_size": 3, "scale": -1.0}, "scale must be a positive finite float"),
        ({"kernel_size": 3, "backend": "nope"}, "unknown localattn backend 'nope'"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, message):
    q = torch.randn(1, 9, 7, 2, 4)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("*", r"\*")):
        localattn.na2d(q, q, q, **kwargs)


def test_bad_tensors_name_the_problem():
    q = torch.randn(1, 9, 7, 2, 4)
    with pytest.raises(ValueError, match=r"query must have 5 dims \(B, X, Y, heads, D\)"):
        localattn.na2d(q[0], q[0], q[0], 3)
    with pytest.raises(ValueError, match="same shape"):
        localattn.na2d(q, q[:, :8], q, 3)
    with pytest.raises(ValueError, match="given together"):
        localattn.na2d(q, q, q, 3, additional_keys=torch.randn(1, 2, 2, 4))
    with pytest.raises(ValueError, match=r"additional_keys/values must both be \(B=1, n"):
        extra = torch.randn(1, 2, 3, 4)
        localattn.na2d(q, q, q, 3, additional_keys=extra, additional_values=extra)
    with pytest.raises(ValueError, match="1, 2 or 3 spatial axes"):
        localattn.neighborhood_attention(torch.randn(1, 2, 3), q, q, 3)


@pytest.mark.parametrize("na_case", list(NA_CASES.values()), ids=list(NA_CASES))
def test_flex_matches_dense(na_ref, na_case):
    """The FlexAttention mask_mod (eager on CPU, forward only there) gives the same attention."""
    shape, kernel, dilation, causal, extra = na_case
    q, k, v, ek, ev = _inputs(shape, extra, seed=11)
    with torch.no_grad():
        out, lse = localattn.neighborhood_attention(
            q, k, v, kernel, dilation, causal, additional_keys=ek, additional_values=ev,
            return_lse=True, backend="flex",
        )  # fmt: skip
    ref_out, ref_lse = na_ref.dense_na(q, k, v, kernel, dilation, causal, extra_k=ek, extra_v=ev)
    torch.testing.assert_close(out, ref_out, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(lse, ref_lse, atol=1e-10, rtol=1e-10)


needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton not installed"
)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: the Triton interpreter


@needs_triton
@pytest.mark.parametrize("na_case", list(NA_CASES.values()), ids=list(NA_CASES))
def test_triton_matches_dense_with_grads(na_ref, na_case):
    shape, kernel, dilation, causal, extra = na_case
    q, k, v, ek, ev = _inputs(shape, extra, dtype=torch.float32, seed=13, d=8)
    leaves = [x for x in (q, k, v, ek, ev) if x is not None]
    dev = [x.detach().to(DEVICE).requires_grad_() for x in leaves]
    dev_extra = dev[3:] if extra else [None, None]
    out, lse = localattn.neighborhood_attention(
        *dev[:3], kernel, dilation, causal, additional_keys=dev_extra[0],
        additional_values=dev_extra[1], return_lse=True, backend="triton",
    )  # fmt: skip
    ref_out, ref_lse = na_ref.dense_na(q, k, v, kernel, dilation, causal, extra_k=ek, extra_v=ev)
    torch.testing.assert_close(out.cpu().double(), ref_out, rtol=0, atol=2e-5)
    torch.testing.assert_close(lse.cpu().double(), ref_lse, rtol=0, atol=2e-5)
    g = torch.Generator().manual_seed(1)
    g_out, g_lse = torch.randn(out.shape, generator=g), torch.randn(lse.shape, generator=g)
    got = torch.autograd.grad((out * g_out.to(DEVICE)).sum() + (lse * g_lse.to(DEVICE)).sum(), dev)
    want = torch.autograd.grad((ref_out * g_out).sum() + (ref_lse * g_lse).sum(), leaves)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.cpu().double(), b.double(), rtol=1e-4, atol=5e-5)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_half_types_within_twice_reference_error(na_ref, dtype):
    """fp16/bf16 through the fused kernels: no worse than twice the reference backend's error."""
    q, k, v, _, _ = _inputs((6, 7), 0, dtype=torch.float32, seed=21, d=16)
    low = [x.detach().to(DEVICE, dtype) for x in (q, k, v)]
    exact, _ = na_ref.dense_na(*(x.cpu() for x in low), (3, 4), (2, 1), (False, True))
    fused = localattn.na2d(*low, (3, 4), (2, 1), (False, True), backend="triton")
    ref = localattn.na2d(*low, (3, 4), (2, 1), (False, True), backend="reference")
    assert fused.dtype == dtype
    err_fused = (fused.cpu().double() - exact).abs().max()
    err_ref = (ref.cpu().double() - exact).abs().max()
    assert err_fused <= 2 * err_ref + 1e-3
