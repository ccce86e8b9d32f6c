"""merge_attentions, and CogView2's direct-SR joint softmax built from two calls (reference.md §4.2)."""

from __future__ import annotations

import torch

import localattn


def _rand(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)


def test_dsr_cross_plus_local_equals_one_joint_softmax(dense):
    b, heads, d = 2, 2, 4
    q = _rand(b, heads, 12, 12, d, seed=0)
    k0, v0 = (
        _rand(b, heads, 4, 4, d, seed=1),
        _rand(b, heads, 4, 4, d, seed=2),
    )  # low-res 3x coarser
    k1, v1 = _rand(b, heads, 12, 12, d, seed=3), _rand(b, heads, 12, 12, d, seed=4)
    o0, l0 = localattn.local_attention_2d(q, k0, v0, 5, return_lse=True)
    o1, l1 = localattn.local_attention_2d(q, k1, v1, (9, 5), return_lse=True)
    out, lse = localattn.merge_attentions([o0, o1], [l0, l1])

    # dense joint softmax over the 25 cross + 45 local candidates, built independently
    mask = torch.cat([dense.window_mask(12, 12, 4, 4, 5, 5, False),
                      dense.window_mask(12, 12, 12, 12, 9, 5, False)], 1)  # fmt: skip
    keys = torch.cat([k0.flatten(2, 3), k1.flatten(2, 3)], 2)
    vals = torch.cat([v0.flatten(2, 3), v1.flatten(2, 3)], 2)
    s = (q.flatten(2, 3) @ keys.transpose(-1, -2) / d**0.5).masked_fill(~mask, float("-inf"))
    ref = (s.softmax(-1) @ vals).view_as(q)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(lse, torch.logsumexp(s, -1).view_as(l0), rtol=0, atol=1e-12)

    g = torch.randn_like(out)
    leaves = (q, k0, v0, k1, v1)
    got = torch.autograd.grad((out * g).sum(), leaves)
    want = torch.autograd.grad((ref * g).sum(), leaves)
    for a, w in zip(got, want, strict=False):
        torch.testing.assert_close(a, w, rtol=0, atol=1e-11)


def test_dsr_matches_sat_two_op_formulation():
    """SAT: concat f_similar scores (-10000 outside), one softmax, sum of two f_weighting."""
    b, heads, d = 1, 2, 4
    q = _rand(b, heads, 9, 9, d, seed=5)
    k0, v0 = _rand(b, heads, 3, 3, d, seed=6), _rand(b, heads, 3, 3, d, seed=7)
    k1, v1 = _rand(b, heads, 9, 9, d, seed=8), _rand(b, heads, 9, 9, d, seed=9)
    cf = lambda x: x.flatten(0, 1).permute(0, 3, 1, 2)  # noqa: E731  (N, C, H, W)
    qs = cf(q) / d**0.5
    s = torch.cat([localattn.similarity_2d(qs, cf(k0), 5),
                   localattn.similarity_2d(qs, cf(k1), (9, 5))], -1).softmax(-1)  # fmt: skip
    sat = localattn.weighting_2d(cf(v0), s[..., :25], 5) + localattn.weighting_2d(
        cf(v1), s[..., 25:], (9, 5)
    )
    o0, l0 = localattn.local_attention_2d(q, k0, v0, 5, return_lse=True)
    o1, l1 = localattn.local_attention_2d(q, k1, v1, (9, 5), return_lse=True)
    out, _ = localattn.merge_attentions([o0, o1], [l0, l1])
    torch.testing.assert_close(cf(out), sat, rtol=0, atol=1e-12)


def test_merge_of_extra_tokens_equals_single_call(dense):
    q = _rand(1, 2, 5, 5, 4, seed=10)
    k, v = _rand(1, 2, 5, 5, 4, seed=11), _rand(1, 2, 5, 5, 4, seed=12)
    ek, ev = _rand(1, 2, 3, 4, seed=13), _rand(1, 2, 3, 4, seed=14)
    joint = localattn.local_attention_2d(q, k, v, 3, extra_k=ek, extra_v=ev)
    o_loc, l_loc = localattn.local_attention_2d(q, k, v, 3, return_lse=True)
    s = q.flatten(2, 3) @ ek.transpose(-1, -2) / 2.0
    o_ext = (s.softmax(-1) @ ev).view_as(q)
    merged, _ = localattn.merge_attentions([o_loc, o_ext], [l_loc, s.logsumexp(-1).view_as(l_loc)])
    torch.testing.assert_close(merged, joint, rtol=0, atol=1e-12)
