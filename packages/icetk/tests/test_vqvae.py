"""VQ-VAE architecture: official names/shapes (reference Appendix A), blocks vs float64 references."""

import math

import pytest
import torch
import torch.nn.functional as F

from icetk import HVQVAE, VQVAEConfig
from icetk.vqvae.blocks import AttnBlock, DownSample, ResidualDownSample
from icetk.vqvae.quantize import VectorQuantizeEMA, nearest_code


def _resnet(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    d = {
        f"{prefix}.norm1.weight": (cin,), f"{prefix}.norm1.bias": (cin,),
        f"{prefix}.conv1.weight": (cout, cin, 3, 3), f"{prefix}.conv1.bias": (cout,),
        f"{prefix}.norm2.weight": (cout,), f"{prefix}.norm2.bias": (cout,),
        f"{prefix}.conv2.weight": (cout, cout, 3, 3), f"{prefix}.conv2.bias": (cout,),
    }  # fmt: skip
    if cin != cout:
        d[f"{prefix}.nin_shortcut.weight"] = (cout, cin, 1, 1)
        d[f"{prefix}.nin_shortcut.bias"] = (cout,)
    return d


def _attn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    d = {f"{prefix}.norm.weight": (c,), f"{prefix}.norm.bias": (c,)}
    for name in ("q", "k", "v", "proj_out"):
        d[f"{prefix}.{name}.weight"] = (c, c, 1, 1)
        d[f"{prefix}.{name}.bias"] = (c,)
    return d


def _conv(prefix: str, cout: int, cin: int, k: int = 3) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (cout, cin, k, k), f"{prefix}.bias": (cout,)}


def appendix_a() -> dict[str, tuple[int, ...]]:
    """Reference Appendix A, transcribed by hand."""
    e: dict[str, tuple[int, ...]] = {}
    e |= _conv("enc.conv_in", 128, 3)
    e |= _resnet("enc.down.0.block.0", 128, 128) | _resnet("enc.down.0.block.1", 128, 128)
    e |= _conv("enc.down.0.downsample.conv", 128, 128)
    e |= _resnet("enc.down.1.block.0", 128, 256) | _resnet("enc.down.1.block.1", 256, 256)
    e |= _conv("enc.down.1.downsample.conv", 256, 256)
    e |= _resnet("enc.down.2.block.0", 256, 512) | _resnet("enc.down.2.block.1", 512, 512)
    e |= _resnet("enc.mid.block_1", 512, 512) | _attn("enc.mid.attn_1", 512)
    e |= _resnet("enc.mid.block_2", 512, 512)
    e |= {"enc.norm_out.weight": (512,), "enc.norm_out.bias": (512,)}
    e |= _conv("enc.conv_out", 256, 512)
    decs = {
        0: [
            (4, 512, 512, True),
            (3, 512, 256, False),
            (2, 256, 128, False),
            (1, 128, 128, False),
            (0, 128, 128, False),
        ],
        1: [(3, 512, 512, False), (2, 512, 256, False), (1, 256, 128, False), (0, 128, 128, False)],
        2: [(2, 512, 512, False), (1, 512, 256, False), (0, 256, 128, False)],
    }
    for d, ups in decs.items():
        p = f"decs.{d}"
        e |= _conv(f"{p}.conv_in", 512, 256)
        e |= _resnet(f"{p}.mid.block_1", 512, 512) | _attn(f"{p}.mid.attn_1", 512)
        e |= _resnet(f"{p}.mid.block_2", 512, 512)
        for i, cin, cout, attn in ups:
            e |= _resnet(f"{p}.up.{i}.block.0", cin, cout)
            if attn:
                e |= _attn(f"{p}.up.{i}.attn.0", cout)
            if i != 0:
                e |= _conv(f"{p}.up.{i}.upsample.conv", cout, cout)
        e |= {f"{p}.norm_out.weight": (128,), f"{p}.norm_out.bias": (128,)}
        e |= _conv(f"{p}.conv_out", 3, 128)
    e |= _conv("quantize.proj", 256, 256, 1)
    e |= {"quantize.embed.weight": (20000, 256), "quantize.cluster_size": (20000,),
          "quantize.embed_avg": (20000, 256)}  # fmt: skip
    for i in (0, 1):
        e |= _conv(f"down_samplers.{i}.conv_down_sampler.conv", 256, 256)
    return e


@pytest.fixture(scope="module")
def official_meta() -> HVQVAE:
    with torch.device("meta"):
        return HVQVAE(VQVAEConfig.official())


def test_official_state_dict_matches_appendix_a(official_meta: HVQVAE) -> None:
    expected = appendix_a()
    got = {k: tuple(v.shape) for k, v in official_meta.state_dict().items()}
    assert len(expected) == 329
    assert set(got) == set(expected)
    assert got == expected


def test_official_parameter_counts(official_meta: HVQVAE) -> None:
    def count(prefix: str) -> int:
        return sum(p.numel() for k, p in official_meta.named_parameters() if k.startswith(prefix))

    assert count("") == 97_439_497
    assert (count("enc."), count("decs."), count("quantize."), count("down_samplers.")) == (
        23_503_488, 67_570_057, 5_185_792, 1_180_160,
    )  # fmt: skip
    assert [count(f"decs.{i}.") for i in range(3)] == [23_667_715, 22_172_803, 21_729_539]


def test_official_compression_levels() -> None:
    cfg = VQVAEConfig.official()
    assert cfg.compressions == (4, 8, 16)
    assert [cfg.level_of(c) for c in (4, 8, 16)] == [0, 1, 2]
    with pytest.raises(ValueError, match=r"compression must be one of"):
        cfg.level_of(32)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match=r"num_groups"):
        VQVAEConfig(enc_channels=30)
    with pytest.raises(ValueError, match=r"upsamples by"):
        VQVAEConfig(dec_channel_mults=((1, 2),))
    with pytest.raises(ValueError, match=r"unknown VQVAEConfig fields"):
        VQVAEConfig.from_dict({"bogus": 1})
    assert VQVAEConfig.from_dict(VQVAEConfig.small().to_dict()) == VQVAEConfig.small()


def test_shapes_through_official_meta_model(official_meta: HVQVAE) -> None:
    x = torch.empty(1, 3, 160, 160, device="meta")
    for level, side in [(0, 40), (1, 20), (2, 10)]:
        z = official_meta.latent(x, level)
        assert tuple(z.shape) == (1, 256, side, side)
        out = official_meta.decs[2 - level](z)
        assert tuple(out.shape) == (1, 3, 160, 160)


def test_nearest_code_matches_float64_reference() -> None:
    g = torch.Generator().manual_seed(1)
    z, codes = torch.randn(3000, 16, generator=g), torch.randn(100, 16, generator=g)
    ref = torch.cdist(z.double(), codes.double()).argmin(1)
    got = nearest_code(z, codes)
    # fp32 expansion may flip near-ties only; check the chosen distance is the minimum
    d = ((z.double()[:, None] - codes.double()[None]) ** 2).sum(-1)
    assert torch.allclose(
        d.gather(1, got[:, None]), d.gather(1, ref[:, None]), rtol=1e-5, atol=1e-6
    )
    assert (got == ref).float().mean() > 0.999


def test_nearest_code_takes_first_index_on_ties() -> None:
    codes = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    assert nearest_code(torch.tensor([[0.0, 0.0], [0.9, 0.0]]), codes).tolist() == [1, 0]


def test_attention_block_matches_float64_reference() -> None:
    torch.manual_seed(0)
    block = AttnBlock(8, 4, 1e-6).double()
    x = torch.randn(2, 8, 5, 3, dtype=torch.float64, requires_grad=True)
    h = block.norm(x)
    q, k, v = (m(h).flatten(2) for m in (block.q, block.k, block.v))  # (B, C, N)
    w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / math.sqrt(8), dim=-1)
    ref = x + block.proj_out(torch.einsum("bij,bcj->bci", w, v).view_as(x))
    out = block(x)
    assert torch.allclose(out, ref, atol=1e-10)
    g = torch.randn_like(ref)
    (gx,) = torch.autograd.grad(out, x, g)
    (rx,) = torch.autograd.grad(ref, x, g)
    assert torch.allclose(gx, rx, atol=1e-9)


def test_downsample_pads_right_bottom_only() -> None:
    torch.manual_seed(0)
    down = DownSample(2).double()
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), down.conv.weight, down.conv.bias, stride=2)
    assert torch.allclose(down(x), ref) and down(x).shape[-2:] == (3, 3)
    res = ResidualDownSample(2).double()
    assert torch.allclose(res(x), F.avg_pool2d(x, 2) + res.conv_down_sampler(x))


def test_ema_update_matches_reference() -> None:
    torch.manual_seed(0)
    q = VectorQuantizeEMA(4, 6, decay=0.9)
    q.init_codebook(torch.randn(50, 4), torch.Generator().manual_seed(0))
    x = torch.randn(2, 4, 3, 3)
    size0, avg0 = q.cluster_size.clone().double(), q.embed_avg.clone().double()
    q.train()
    _, ids, commit, flat = q(x)
    onehot = F.one_hot(ids.flatten(), 6).double()  # (N, K)
    size = 0.9 * size0 + 0.1 * onehot.sum(0)
    avg = 0.9 * avg0 + 0.1 * onehot.t() @ flat.double()
    n = size.sum()
    norm = (size + 1e-5) / (n + 6e-5) * n
    assert torch.allclose(q.cluster_size.double(), size, atol=1e-6)
    assert torch.allclose(q.embed.weight.double(), avg / norm[:, None], atol=1e-5)
    assert commit.item() > 0


def test_straight_through_gradient_reaches_encoder() -> None:
    torch.manual_seed(0)
    q = VectorQuantizeEMA(4, 6).eval()
    x = torch.randn(1, 4, 2, 2, requires_grad=True)
    out, _, commit, _ = q(x)
    (out.sum() + commit).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert q.embed.weight.grad is None


def test_restart_codes_only_touches_dead_codes() -> None:
    q = VectorQuantizeEMA(3, 5)
    before = q.codebook.detach().clone()
    dead = torch.tensor([False, True, False, True, False])
    z = torch.full((7, 3), 9.0)
    assert q.restart_codes(dead, z, torch.Generator().manual_seed(0)) == 2
    assert torch.equal(q.codebook[~dead], before[~dead])
    assert torch.all(q.codebook[dead] == 9.0)
