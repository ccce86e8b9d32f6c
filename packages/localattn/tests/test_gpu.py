"""CUDA checks (skipped without a GPU): fused Triton and compiled Flex vs the reference."""

from __future__ import annotations

import pytest
import torch

import localattn

pytestmark = pytest.mark.gpu

PATTERNS = {
    "itersr-9x5+16": ((24, 20), (24, 20), (9, 5), 16),
    "dsr-cross-5x5": ((24, 21), (8, 7), (5, 5), 0),
    "causal-9x5": ((20, 20), (20, 20), (9, 5), 0),
}


def _make(hw, khw, t, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)

    def rnd(*s):
        return torch.randn(*s, generator=g, device="cuda", dtype=torch.float32)

    q, k, v = rnd(2, 3, *hw, 64), rnd(2, 3, *khw, 64), rnd(2, 3, *khw, 64)
    extra = {}
    if t:
        mask = torch.ones(2, t, dtype=torch.bool, device="cuda")
        mask[1, t // 2 :] = False
        extra = {"extra_k": rnd(2, 3, t, 64), "extra_v": rnd(2, 3, t, 64),
                 "extra_bias": rnd(1, 3, t), "extra_mask": mask}  # fmt: skip
    cast = lambda x: x.to(dtype) if x.dtype.is_floating_point and x.dim() > 3 else x  # noqa: E731
    return [cast(x) for x in (q, k, v)], {n: cast(x) for n, x in extra.items()}


def _fwd_bwd(backend, qkv, extra, ks, causal, g):
    leaves = [x.detach().clone().requires_grad_() for x in qkv]
    out = localattn.local_attention_2d(*leaves, ks, causal=causal, backend=backend, **extra)
    grads = torch.autograd.grad(out, leaves, g.to(out.dtype))
    return out.double(), [x.double() for x in grads]


@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("backend", ["triton", "flex"])
def test_backend_matches_reference_on_cuda(backend, dtype, name):
    hw, khw, ks, t = PATTERNS[name]
    causal = name.startswith("causal")
    qkv, extra = _make(hw, khw, t, dtype)
    g = torch.randn(2, 3, *hw, 64, device="cuda")
    exact = _fwd_bwd("reference", [x.double() for x in qkv],
                     {n: x.double() if x.is_floating_point() else x for n, x in extra.items()},
                     ks, causal, g.double())  # fmt: skip
    lowp = _fwd_bwd("reference", qkv, extra, ks, causal, g)
    fused = _fwd_bwd(backend, qkv, extra, ks, causal, g)
    for f, lo, ex in zip(
        [fused[0], *fused[1]], [lowp[0], *lowp[1]], [exact[0], *exact[1]], strict=False
    ):
        err, ref_err = (f - ex).abs().max(), (lo - ex).abs().max()
        atol = localattn.get_backend(backend).ERROR_ATOL[dtype]
        assert err <= max(2 * ref_err, atol), (err.item(), ref_err.item())


def test_auto_choice_on_cuda_is_triton():
    qkv, _ = _make((8, 8), (8, 8), 0, torch.bfloat16)
    from localattn._validate import validate_attention

    inputs = validate_attention(*qkv, 3, causal=False, extra_k=None, extra_v=None,
                                extra_bias=None, extra_mask=None, scale=None)  # fmt: skip
    assert localattn.select_backend(inputs).NAME == "triton"


NA_PATTERNS = {  # (spatial, kernel, dilation, causal, additional keys)
    "na2d-7-d2": ((24, 20), (7, 7), (2, 2), (False, False), 0),
    "na3d-causal-extra": ((6, 12, 10), (3, 5, 5), (1, 2, 1), (True, False, False), 8),
    "na1d-even": ((200,), (16,), (3,), (False,), 0),
}


@pytest.mark.parametrize("name", list(NA_PATTERNS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("backend", ["triton", "flex"])
def test_neighborhood_backend_matches_reference_on_cuda(backend, dtype, name):
    """Neighborhood attention, forward and backward: within twice the reference's error."""
    shape, kernel, dilation, causal, extra = NA_PATTERNS[name]
    g = torch.Generator(device="cuda").manual_seed(1)

    def rnd(*s):
        return torch.randn(*s, generator=g, device="cuda")

    qkv = [rnd(2, *shape, 3, 64) for _ in range(3)]
    ek = [rnd(2, extra, 3, 64), rnd(2, extra, 3, 64)] if extra else [None, None]
    dout = rnd(2, *shape, 3, 64)

    def run(backend_name, cast):
        leaves = [cast(x).requires_grad_() for x in qkv + [x for x in ek if x is not None]]
        extras = leaves[3:] if extra else [None, None]
        out = localattn.neighborhood_attention(
            *leaves[:3], kernel, dilation, causal, additional_keys=extras[0],
            additional_values=extras[1], backend=backend_name,
        )  # fmt: skip
        grads = torch.autograd.grad(out, leaves, dout.to(out.dtype))
        return [out.double(), *(x.double() for x in grads)]

    exact = run("reference", lambda x: x.double())
    lowp = run("reference", lambda x: x.to(dtype))
    fused = run(backend, lambda x: x.to(dtype))
    atol = localattn.get_backend(backend).ERROR_ATOL[dtype]
    for f, lo, ex in zip(fused, lowp, exact, strict=True):
        err, ref_err = (f - ex).abs().max(), (lo - ex).abs().max()
        assert err <= max(2 * ref_err, atol), (err.item(), ref_err.item())
