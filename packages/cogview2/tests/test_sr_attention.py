"""DSR and ITERSR attention against a dense masked reference built here, in float64."""

from __future__ import annotations

import pytest
import torch

from coglm_core.config import CogLMConfig
from coglm_core.layers import SelfAttention
from cogview2.models import (
    AttentionPlus,
    DSRAttention,
    DSRConfig,
    ITERSRAttention,
    ITERSRConfig,
    dsr_level0_mask,
)

HEADS, HD = 2, 4
HIDDEN = HEADS * HD


def _module(seed: int) -> SelfAttention:
    torch.manual_seed(seed)
    cfg = CogLMConfig.tiny(hidden_size=HIDDEN, num_attention_heads=HEADS)
    mod = SelfAttention(cfg).double()
    for p in mod.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    return mod


def _heads(x: torch.Tensor) -> torch.Tensor:  # (B, S, H) -> (B, h, S, hd)
    b, s, _ = x.shape
    return x.view(b, s, HEADS, HD).transpose(1, 2)


def _dense(q, k, v, allowed):  # allowed (B, Sq, Sk)
    s = (q / HD**0.5) @ k.transpose(-1, -2)
    s = torch.where(allowed[:, None], s, torch.full_like(s, -10000.0))
    return s.softmax(-1) @ v


def _window(qr, qc, kr, kc, ratio, kernel):  # dense window predicate
    rows, cols = kernel
    dy = kr - qr // ratio + rows // 2
    dx = kc - qc // ratio + cols // 2
    return (dy >= 0) & (dy < rows) & (dx >= 0) & (dx < cols)


def _grid_coords(g: int) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.arange(g * g)
    return idx // g, idx % g


@pytest.mark.parametrize("n_text", [1, 3])
def test_dsr_attention_matches_dense_reference(n_text: int) -> None:
    cfg = DSRConfig(text_slots=4, low_grid=3, high_grid=6, cross_kernel=(5, 5), local_kernel=(9, 5))
    mod = _module(0)
    plus = AttentionPlus(2, HIDDEN).double()
    for p in plus.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    b, l0, n1 = 2, cfg.level0_len, cfg.num_high
    hidden = torch.randn(b, l0 + n1, HIDDEN, dtype=torch.float64)
    n_pad = torch.full((b,), cfg.text_slots - n_text)
    fn = DSRAttention(cfg, dsr_level0_mask(n_pad, cfg), plus, backend="reference")
    got = fn(mod, hidden, 1)

    # Dense reference: level 0 with base weights; level 1 queries with plus weights over
    # [low-res keys (base weights), hi-res keys (plus weights)].
    q0, k0, v0 = (_heads(t) for t in mod.query_key_value(hidden[:, :l0]).chunk(3, -1))
    q1, k1, v1 = (_heads(t) for t in plus.query_key_value[1](hidden[:, l0:]).chunk(3, -1))
    m0 = torch.ones(l0, l0, dtype=torch.bool)
    m0[: cfg.text_slots, cfg.text_slots :] = False
    p = cfg.text_slots - n_text
    m0[p:, :p] = False
    ctx0 = _dense(q0, k0, v0, m0.expand(b, -1, -1))
    hr, hc = _grid_coords(cfg.high_grid)
    lr, lc = _grid_coords(cfg.low_grid)
    ratio = cfg.high_grid // cfg.low_grid
    cross = _window(hr[:, None], hc[:, None], lr[None], lc[None], ratio, cfg.cross_kernel)
    local = _window(hr[:, None], hc[:, None], hr[None], hc[None], 1, cfg.local_kernel)
    keys = torch.cat([k0[:, :, cfg.text_slots :], k1], 2)
    vals = torch.cat([v0[:, :, cfg.text_slots :], v1], 2)
    ctx1 = _dense(q1, keys, vals, torch.cat([cross, local], 1).expand(b, -1, -1))
    merge = lambda c: c.transpose(1, 2).reshape(b, -1, HIDDEN)  # noqa: E731
    want = torch.cat([mod.dense(merge(ctx0)), plus.dense[1](merge(ctx1))], 1)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_text", [2, 4])
def test_itersr_attention_matches_dense_reference(n_text: int) -> None:
    cfg = ITERSRConfig(text_slots=4, high_grid=6, local_kernel=(9, 5))
    mod = _module(1)
    b, t = 2, cfg.text_slots
    hidden = torch.randn(b, t + cfg.num_high, HIDDEN, dtype=torch.float64)
    text_mask = (torch.arange(t) >= t - n_text).expand(b, -1)
    got = ITERSRAttention(cfg, text_mask, backend="reference")(mod, hidden, 0)

    q, k, v = (_heads(x) for x in mod.query_key_value(hidden).chunk(3, -1))
    s = t + cfg.num_high
    allowed = torch.zeros(s, s, dtype=torch.bool)
    allowed[:, :t] = text_mask[0]
    hr, hc = _grid_coords(cfg.high_grid)
    allowed[t:, t:] = _window(hr[:, None], hc[:, None], hr[None], hc[None], 1, cfg.local_kernel)
    ctx = _dense(q, k, v, allowed.expand(b, -1, -1))
    want = mod.dense(ctx.transpose(1, 2).reshape(b, s, HIDDEN))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_level0_mask_blocks_padding_and_image_for_text() -> None:
    cfg = DSRConfig(text_slots=4, low_grid=2, high_grid=6)
    m = dsr_level0_mask(torch.tensor([1]), cfg)[0]
    assert not m[:4, 4:].any()  # text and pad rows never see the low-res image
    assert not m[1:, 0].any()  # real tokens never see the pad slot
    assert m[0, :4].all() and m[4:, 1:].all()


def test_release_layout_numbers() -> None:
    dsr, itersr = DSRConfig(), ITERSRConfig()
    assert (dsr.level0_len, dsr.seq_len, dsr.max_text_len, dsr.num_high) == (496, 4096, 95, 3600)
    assert (dsr.cross_kernel, dsr.local_kernel) == ((5, 5), (9, 5))
    assert (itersr.seq_len, itersr.text_slots, itersr.local_kernel) == (3616, 16, (9, 5))
    with pytest.raises(ValueError, match="multiple of low_grid"):
        DSRConfig(low_grid=20, high_grid=50)


def test_extra_position_tiling_repeats_the_low_res_rows_from_boi() -> None:
    from coglm_core.transformer import CogLM
    from cogview2.models import tile_extra_positions

    torch.manual_seed(0)
    base = CogLM(CogLMConfig.tiny())  # boi_position 40, 4×4 grid
    table = torch.empty(12 * 12, 32)
    tile_extra_positions(base, table, 4, 12)
    old = base.transformer.position_embeddings.weight[40:56].detach()  # starts at BOI's row
    for a in range(3):
        for b in range(3):
            for y in range(4):
                for x in range(4):
                    assert torch.equal(table[(a * 4 + y) * 12 + b * 4 + x], old[y * 4 + x])
