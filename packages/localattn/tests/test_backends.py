"""Triton (interpreter on CPU) and FlexAttention backends against the dense reference."""

from __future__ import annotations

import importlib.util
import warnings

import pytest
import torch

import localattn

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton not installed"
)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _to(d, device, dtype=None):
    return {
        n: (x.to(device) if x.dtype == torch.bool else x.to(device, dtype)) for n, x in d.items()
    }


@needs_triton
def test_triton_matches_dense_and_reference_grads(case, dense, inputs, grads_of):
    q, k, v, extra = inputs(1, 2, case.hw, case.khw, 8, case.t, dtype=torch.float32,
                            bias_shape=case.bias_shape and (1, 2, case.t), masked=case.padded)  # fmt: skip
    if case.padded:
        extra["extra_mask"] = extra["extra_mask"][:1]
    kw = {"causal": case.causal, "return_lse": True}
    leaves = grads_of(q, k, v, extra)
    dev = [x.detach().to(DEVICE).requires_grad_() for x in leaves]
    names = [n for n, x in extra.items() if x.requires_grad]
    dev_extra = {**_to(extra, DEVICE), **dict(zip(names, dev[3:], strict=False))}
    out, lse = localattn.local_attention_2d(
        *dev[:3], case.kernel_size, **kw, **dev_extra, backend="triton"
    )
    ref_out, ref_lse = dense(q, k, v, case.kernel_size, case.causal, **extra)
    torch.testing.assert_close(out.cpu().double(), ref_out, rtol=0, atol=2e-5)
    torch.testing.assert_close(lse.cpu().double(), ref_lse, rtol=0, atol=2e-5)
    g_out, g_lse = torch.randn_like(out), torch.randn_like(lse)
    got = torch.autograd.grad((out * g_out).sum() + (lse * g_lse).sum(), dev)
    r_out, r_lse = localattn.local_attention_2d(
        q, k, v, case.kernel_size, **kw, **extra, backend="reference"
    )
    want = torch.autograd.grad((r_out * g_out.cpu()).sum() + (r_lse * g_lse.cpu()).sum(), leaves)
    for a, b in zip(got, want, strict=False):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-4, atol=5e-5)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_half_types_within_twice_reference_error(dtype, dense, inputs):
    q, k, v, extra = inputs(1, 1, (6, 6), (6, 6), 16, 4, dtype=torch.float32, requires_grad=False)
    low = [x.to(DEVICE, dtype) for x in (q, k, v)]
    low_extra = _to(extra, DEVICE, dtype)
    exact, _ = dense(*(x.cpu() for x in low), (5, 3), **{n: x.cpu() for n, x in low_extra.items()})
    fused = localattn.local_attention_2d(*low, (5, 3), **low_extra, backend="triton")
    ref_low = localattn.local_attention_2d(
        *(x.cpu() for x in low), (5, 3), **{n: x.cpu() for n, x in low_extra.items()},
        backend="reference",
    )  # fmt: skip
    err = (fused.cpu().double() - exact).abs().max()
    ref_err = (ref_low.double() - exact).abs().max()
    # flash-attn's rule, or the backend's declared tolerance (the interpreter's fp32 -> bf16
    # cast truncates instead of rounding, so it can be one ulp off where a GPU rounds)
    atol = localattn.get_backend("triton").ERROR_ATOL[dtype]
    assert err <= max(2 * ref_err + 1e-3, atol), (err, ref_err)


def test_flex_matches_dense_forward(case, dense, inputs):
    q, k, v, extra = inputs(2, 2, case.hw, case.khw, 4, case.t, bias_shape=case.bias_shape,
                            masked=case.padded, requires_grad=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager flex warns (once) that it is unfused
        out, lse = localattn.local_attention_2d(
            q, k, v, case.kernel_size, causal=case.causal, return_lse=True, backend="flex", **extra
        )
    ref_out, ref_lse = dense(q, k, v, case.kernel_size, case.causal, **extra)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-10)
    torch.testing.assert_close(lse, ref_lse, rtol=0, atol=1e-10)
