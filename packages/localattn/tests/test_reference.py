"""The reference backend against an independent dense float64 attention, plus gradcheck."""

from __future__ import annotations

import pytest
import torch

import localattn


def _call(q, k, v, kernel_size, causal, extra, **kw):
    return localattn.local_attention_2d(
        q, k, v, kernel_size, causal=causal, return_lse=True, backend="reference", **extra, **kw
    )


def _assert_same(out, lse, ref_out, ref_lse, ins):
    """Outputs equal to 1e-12, and gradients (random output cotangents) to 1e-11."""
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(lse, ref_lse, rtol=0, atol=1e-12)
    g_out, g_lse = torch.randn_like(out), torch.randn_like(lse)
    got = torch.autograd.grad((out * g_out).sum() + (lse * g_lse).sum(), ins)
    want = torch.autograd.grad((ref_out * g_out).sum() + (ref_lse * g_lse).sum(), ins)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_matches_dense_forward_and_grads(case, dense, inputs, grads_of):
    q, k, v, extra = inputs(
        2, 2, case.hw, case.khw, 4, case.t, bias_shape=case.bias_shape, masked=case.padded
    )
    out, lse = _call(q, k, v, case.kernel_size, case.causal, extra)
    ref_out, ref_lse = dense(q, k, v, case.kernel_size, case.causal, **extra)
    _assert_same(out, lse, ref_out, ref_lse, grads_of(q, k, v, extra))


def test_gradcheck(case, inputs):
    bias_shape = None if case.bias_shape is None else (1, 1, case.t)
    q, k, v, extra = inputs(
        1, 1, case.hw, case.khw, 3, case.t, bias_shape=bias_shape, masked=case.padded
    )
    if case.padded:
        extra["extra_mask"] = extra["extra_mask"][:1]
        extra["extra_mask"][0, 0] = True
    names = [n for n, x in extra.items() if x.requires_grad]

    def fn(q, k, v, *extra_tensors):
        kw = {**extra, **dict(zip(names, extra_tensors, strict=False))}
        return _call(q, k, v, case.kernel_size, case.causal, kw)

    ins = (q, k, v, *(extra[n] for n in names))
    assert torch.autograd.gradcheck(fn, ins, fast_mode=True)


@pytest.mark.parametrize(
    "dtype, atol", [(torch.float32, 1e-5), (torch.float16, 4e-3), (torch.bfloat16, 3e-2)]
)
def test_low_precision(dtype, atol, dense, inputs):
    q, k, v, extra = inputs(1, 2, (7, 6), (7, 6), 8, 3, dtype=dtype, bias_shape=(1, 2, 3))
    out, lse = _call(q, k, v, (5, 3), False, extra)
    assert out.dtype == dtype and lse.dtype == torch.float32
    ref_out, ref_lse = dense(q, k, v, (5, 3), False, **extra)
    torch.testing.assert_close(out.double(), ref_out, rtol=0, atol=atol)
    torch.testing.assert_close(lse.double(), ref_lse, rtol=0, atol=atol)
    out.float().sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v))


def test_non_contiguous_and_singleton_batch_heads(dense, inputs):
    q, k, v, _ = inputs(1, 1, (5, 6), (5, 6), 4, requires_grad=False)
    qt = q.transpose(2, 3).contiguous().transpose(2, 3).requires_grad_()  # strided view
    kt = torch.cat([k, k], -1)[..., ::2].requires_grad_()  # step-2 slice
    assert not qt.is_contiguous() and not kt.is_contiguous()
    out, _lse = _call(qt, kt, v, (3, 5), False, {})
    ref_out, _ref_lse = dense(qt, kt, v, (3, 5))
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    out.sum().backward()
    assert qt.grad.shape == qt.shape and kt.grad.shape == kt.shape


def test_default_scale_and_explicit_scale(dense, inputs):
    q, k, v, _ = inputs(1, 2, (4, 4), (4, 4), 9, requires_grad=False)
    out = localattn.local_attention_2d(q, k, v, 3, scale=0.5)
    torch.testing.assert_close(out, dense(q, k, v, 3, scale=0.5)[0], rtol=0, atol=1e-12)
    out = localattn.local_attention_2d(q, k, v, 3)
    torch.testing.assert_close(out, dense(q, k, v, 3, scale=1 / 3)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("hw", "khw", "kernel_size", "causal"),
    [
        ((9, 8), (9, 8), (9, 5), False),
        ((7, 11), (7, 11), (3, 5), True),
        ((12, 9), (4, 3), 3, False),
    ],
)
def test_one_tile_per_chunk_matches_dense(
    monkeypatch, dense, inputs, grads_of, hw, khw, kernel_size, causal
):
    """Results are written straight into their rows chunk by chunk, padding tiles included."""
    from localattn.backends import _tiled

    monkeypatch.setattr(_tiled, "_chunks", lambda q_index, kt, qf, t: [
        (i, i + 1) for i in range(q_index.shape[0])
    ])  # fmt: skip
    q, k, v, extra = inputs(2, 1, hw, khw, 4, 2, seed=3, bias_shape=(2, 1, 2), masked=True)
    out, lse = _call(q, k, v, kernel_size, causal, extra)
    ref_out, ref_lse = dense(q, k, v, kernel_size, causal, **extra)
    _assert_same(out, lse, ref_out, ref_lse, grads_of(q, k, v, extra))


def test_autocast_casts_inputs_and_backward_runs_under_autocast(dense, inputs):
    """Under CPU autocast the op runs in bf16 like SDPA, with fp32 inputs and a backward that is
    itself called inside the autocast region (the training loops do that)."""
    q, k, v, extra = inputs(1, 2, (6, 5), (6, 5), 16, 3, dtype=torch.float32, seed=11,
                            bias_shape=(1, 2, 3))  # fmt: skip
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = localattn.local_attention_2d(q, k, v, (5, 3), backend="reference", **extra)
        assert out.dtype == torch.bfloat16
        out.float().square().sum().backward()
    ref, _ = dense(q, k, v, (5, 3), **extra)
    torch.testing.assert_close(out.double(), ref, atol=3e-2, rtol=3e-2)
    for x in (q, k, v, *extra.values()):
        assert x.grad is not None and x.grad.dtype == torch.float32 and x.grad.isfinite().all()


def test_workspace_bytes_scale_with_the_output_between_floor_and_cap():
    from localattn._tiling import DEFAULT_TILING as T

    floor, cap = 2 * 4 * T.min_chunk_elements, 2 * 4 * T.chunk_elements
    assert localattn.workspace_bytes(1, 1, 4, 4, 8) == floor  # tiny grid: the floor
    assert localattn.workspace_bytes(1, 48, 128, 128, 64) == cap  # huge grid: the CPU cap
    mid = localattn.workspace_bytes(4, 4, 60, 60, 64)  # 3.7 M output elements
    assert mid == 2 * 4 * int(T.chunk_output_ratio * 4 * 4 * 60 * 60 * 64)
    assert localattn.workspace_bytes(4, 4, 60, 60, 64, "cuda") == mid  # same below both caps


@pytest.mark.parametrize("bad", [0, -3, 2.0, True])
def test_workspace_bytes_rejects_sizes_that_are_not_positive_ints(bad):
    with pytest.raises(ValueError, match=r"positive int sizes, got \{'height'"):
        localattn.workspace_bytes(1, 4, bad, 8, 64)
