"""LocalAttention2d, and torch.compile over the registered custom ops."""

from __future__ import annotations

import pytest
import torch

import localattn


def test_module_matches_functional_with_context():
    torch.manual_seed(0)
    mod = localattn.LocalAttention2d(16, 4, (5, 3), dtype=torch.float64)
    x = torch.randn(2, 6, 5, 16, dtype=torch.float64)
    ctx = torch.randn(2, 3, 16, dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    y = mod(x, context=ctx, context_mask=mask)
    assert y.shape == x.shape
    qkv = mod.qkv(x).view(2, 6, 5, 3, 4, 4).permute(3, 0, 4, 1, 2, 5)  # (3, B, heads, H, W, Dh)
    ckv = mod.qkv(ctx).view(2, 3, 3, 4, 4).permute(2, 0, 3, 1, 4)  # (3, B, heads, T, Dh)
    o = localattn.local_attention_2d(*qkv, (5, 3), extra_k=ckv[1], extra_v=ckv[2], extra_mask=mask)
    torch.testing.assert_close(y, mod.proj(o.permute(0, 2, 3, 1, 4).reshape(2, 6, 5, 16)))
    y.sum().backward()
    assert mod.qkv.weight.grad is not None


@pytest.mark.slow
def test_torch_compile_fullgraph_forward_and_backward():
    q, k, v = (torch.randn(1, 2, 6, 6, 8, requires_grad=True) for _ in range(3))
    ek, ev = (torch.randn(1, 2, 3, 8, requires_grad=True) for _ in range(2))

    def f(q, k, v, ek, ev):
        o, lse = localattn.local_attention_2d(q, k, v, (3, 5), extra_k=ek, extra_v=ev,
                                              return_lse=True)  # fmt: skip
        return o.sum() + lse.sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    got = compiled(q, k, v, ek, ev)
    grads = torch.autograd.grad(got, (q, k, v, ek, ev))
    want = f(q, k, v, ek, ev)
    torch.testing.assert_close(got, want)
    for a, b in zip(grads, torch.autograd.grad(want, (q, k, v, ek, ev)), strict=False):
        torch.testing.assert_close(a, b)


def test_custom_ops_pass_opcheck():
    """torch.library.opcheck: schema, fake tensor and autograd registration are consistent."""
    q, k, v = (torch.randn(1, 2, 4, 4, 8, requires_grad=True) for _ in range(3))
    ek, ev = (torch.randn(1, 2, 2, 8, requires_grad=True) for _ in range(2))
    ea = torch.zeros(1, 2, 2)
    torch.library.opcheck(
        torch.ops.localattn.reference_forward.default, (q, k, v, ek, ev, ea, 3, 3, False, 0.3)
    )
