import math

import pytest
import torch
import torch.nn.functional as F

from coglm_core import (
    MASKED_SCORE,
    CogLM,
    CogLMConfig,
    KVCache,
    MaskedAttention,
    RegionMask,
    SelfAttention,
    coglm_attention_mask,
    expected_shapes,
    sat_attention,
)


def _reference_forward(model: CogLM, ids, pos, mask, bias) -> torch.Tensor:
    """Float64 re-statement of reference.md §2.2–2.3 from the raw state dict."""
    c = model.config
    sd = {k: v.double() for k, v in model.state_dict().items()}
    h, nh, hd = c.hidden_size, c.num_attention_heads, c.head_dim

    def ln(x, name):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + c.layernorm_epsilon) * sd[name + ".weight"] + sd[
            name + ".bias"
        ]

    def lin(x, name):
        return x @ sd[name + ".weight"].T + sd[name + ".bias"]

    x = (
        sd["transformer.word_embeddings.weight"][ids]
        + sd["transformer.position_embeddings.weight"][pos]
    )
    b, s = ids.shape
    m = mask.double()
    for i in range(c.num_layers):
        p = f"transformer.layers.{i}."
        a = lin(ln(x, p + "input_layernorm"), p + "attention.query_key_value")
        q, k, v = (a[..., j * h : (j + 1) * h].view(b, s, nh, hd).transpose(1, 2) for j in range(3))
        scores = (q / math.sqrt(hd)) @ k.transpose(-1, -2) + bias
        scores = scores * m - 10000.0 * (1 - m)
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, h)
        x = x + ln(lin(ctx, p + "attention.dense"), p + "third_layernorm")
        y = lin(ln(x, p + "post_attention_layernorm"), p + "mlp.dense_h_to_4h")
        y = 0.5 * y * (1 + torch.tanh(0.7978845608028654 * (y + 0.044715 * y**3)))
        x = x + ln(lin(y, p + "mlp.dense_4h_to_h"), p + "fourth_layernorm")
    x = ln(x, "transformer.final_layernorm")
    return x @ sd["transformer.word_embeddings.weight"].T


def _inputs(config: CogLMConfig, batch: int = 2, seq: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, config.vocab_size, (batch, seq), generator=g)
    pos = torch.randint(0, config.max_sequence_length, (seq,), generator=g)
    mask = torch.rand(seq, seq, generator=g) < 0.6
    mask[3] = False  # a row with no visible key: SAT gives a uniform average
    bias = torch.randn(seq, seq, generator=g, dtype=torch.float64)
    return ids, pos, mask, bias


def test_state_dict_keys_are_the_sat_keys(tiny_config: CogLMConfig) -> None:
    sd = CogLM(tiny_config).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_shapes(tiny_config)


def test_forward_matches_float64_reference(tiny_model: CogLM) -> None:
    ids, pos, mask, bias = _inputs(tiny_model.config)
    out = tiny_model(ids, pos, attention_mask=mask, attention_bias=bias)
    ref = _reference_forward(tiny_model, ids, pos, mask, bias)
    assert out.logits.dtype == torch.float64  # at least float32
    torch.testing.assert_close(out.logits.double(), ref, rtol=1e-10, atol=1e-9)


def test_masked_scores_are_exactly_minus_10000() -> None:
    q, k, v = (torch.randn(1, 1, 3, 4, dtype=torch.float64) for _ in range(3))
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    out = sat_attention(q, k, v, mask, torch.full((3, 3), 5.0, dtype=torch.float64))
    assert MASKED_SCORE == -10000.0
    torch.testing.assert_close(out[0, 0, 1], v[0, 0].mean(0))  # all masked -> uniform, no NaN
    torch.testing.assert_close(out[0, 0, 0], v[0, 0, 0])


def test_logits_range_is_a_slice_in_fp32(tiny_model: CogLM) -> None:
    ids, pos, _, _ = _inputs(tiny_model.config)
    full = tiny_model(ids, pos).logits
    part = tiny_model(ids, pos, logits_range=(0, 64)).logits
    assert part.dtype == torch.float64 and part.shape[-1] == 64
    torch.testing.assert_close(part, full[..., :64])
    with pytest.raises(ValueError, match="logits_range"):
        tiny_model(ids, pos, logits_range=(0, 999))


def test_bf16_head_is_cast_in_row_chunks(monkeypatch, tiny_config: CogLMConfig) -> None:
    import coglm_core.transformer as T

    torch.manual_seed(1)
    model = CogLM(tiny_config).to(torch.bfloat16).eval()
    hidden = torch.randn(2, 3, tiny_config.hidden_size, dtype=torch.bfloat16)
    whole = hidden.double() @ model.transformer.word_embeddings.weight.double().T
    monkeypatch.setattr(T, "HEAD_CHUNK_ROWS", 7)  # not a divisor of the 128 rows
    out = model.logits(hidden)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), whole, rtol=1e-6, atol=1e-6)  # float32 accuracy
    torch.testing.assert_close(model.logits(hidden, (5, 50)).double(), whole[..., 5:50],
                               rtol=1e-6, atol=1e-6)  # fmt: skip


def test_layernorm_runs_in_fp32_under_bf16(tiny_config: CogLMConfig) -> None:
    torch.manual_seed(0)
    model = CogLM(tiny_config).eval()
    ids, pos, _, _ = _inputs(tiny_config)
    ref = model(ids, pos).logits
    half = model.to(torch.bfloat16)(ids, pos).logits
    assert half.dtype == torch.float32
    assert (half - ref).abs().max() < 0.05 * ref.abs().max()
    ln = model.transformer.final_layernorm
    x = torch.randn(4, tiny_config.hidden_size, dtype=torch.bfloat16) * 100 + 1000
    expected = F.layer_norm(
        x.float(), ln.normalized_shape, ln.weight.float(), ln.bias.float(), ln.eps
    )
    assert torch.equal(ln(x), expected.to(torch.bfloat16))


def test_init_follows_sat(tiny_config: CogLMConfig) -> None:
    config = CogLMConfig.tiny(hidden_size=128, num_attention_heads=4, num_layers=8)
    torch.manual_seed(0)
    sd = CogLM(config).state_dict()
    std = config.init_std
    assert (
        abs(float(sd["transformer.layers.0.attention.query_key_value.weight"].std()) - std) < 0.002
    )
    scaled = float(sd["transformer.layers.0.mlp.dense_4h_to_h.weight"].std())
    assert abs(scaled - std / math.sqrt(16)) < 0.0005
    assert not sd["transformer.layers.0.attention.dense.bias"].any()
    assert torch.equal(sd["transformer.final_layernorm.weight"], torch.ones(128))


def test_kv_cache_matches_full_forward(tiny_model: CogLM) -> None:
    ids, pos, _, _ = _inputs(tiny_model.config, seq=10)
    mask = coglm_attention_mask(10, [(4, 10)])
    full = tiny_model(ids, pos, attention_mask=mask).logits
    cache = tiny_model.new_kv_cache()
    first = tiny_model(ids[:, :6], pos[:6], attention_mask=mask[:6, :6], kv_cache=cache).logits
    steps = [first]
    for t in range(6, 10):
        steps.append(
            tiny_model(
                ids[:, t : t + 1],
                pos[t : t + 1],
                attention_mask=mask[t : t + 1, : t + 1],
                kv_cache=cache,
            ).logits
        )
    torch.testing.assert_close(torch.cat(steps, 1), full)
    assert len(cache) == 10


def test_kv_cache_expand_broadcasts_a_prefix() -> None:
    cache = KVCache(1)
    k = torch.randn(1, 2, 3, 4)
    cache.append(0, k, k)
    big = cache.expand(3)
    k2, _ = big.append(0, torch.zeros(3, 2, 1, 4), torch.zeros(3, 2, 1, 4))
    assert k2.shape == (3, 2, 4, 4) and torch.equal(k2[2, :, :3], k[0])


def test_kv_cache_capacity_allocates_once_and_survives_expand() -> None:
    cache = KVCache(1, capacity=7)
    k = torch.randn(1, 2, 3, 4)
    cache.append(0, k, k)
    buffer = cache._k[0]
    assert buffer is not None and buffer.shape[2] == 7
    big = cache.expand(3)
    room = big._k[0]
    assert room is not None and room.shape == (3, 2, 7, 4)
    for t in range(4):  # fills the room exactly: no reallocation
        new = torch.randn(3, 2, 1, 4)
        k2, _ = big.append(0, new, new)
        assert big._k[0] is room and torch.equal(k2[:, :, 3 + t], new[:, :, 0])
    assert torch.equal(k2[1, :, :3], k[0])
    with pytest.raises(ValueError, match="capacity"):
        KVCache(1, capacity=-1)


def test_custom_attention_fn_contract(tiny_model: CogLM) -> None:
    ids, pos, mask, bias = _inputs(tiny_model.config)
    calls = []

    def my_attention(module: SelfAttention, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        calls.append(layer)
        q, k, v = module.split_heads(module.query_key_value(hidden))
        assert q.shape == (2, module.num_heads, 12, module.head_dim)
        return module.dense(module.merge_heads(sat_attention(q, k, v, mask, bias)))

    custom = tiny_model(ids, pos, attention_fn=my_attention).logits
    default = tiny_model(ids, pos, attention_mask=mask, attention_bias=bias).logits
    torch.testing.assert_close(custom, default)
    assert calls == [0, 1]
    with pytest.raises(ValueError, match="attention_fn owns"):
        tiny_model(ids, pos, attention_fn=my_attention, attention_mask=mask)


def test_split_heads_layout(tiny_model: CogLM) -> None:
    attn = tiny_model.transformer.layers[0].attention
    h, hd = tiny_model.config.hidden_size, tiny_model.config.head_dim
    qkv = torch.arange(3 * h, dtype=torch.float64).view(1, 1, 3 * h)
    q, k, v = attn.split_heads(qkv)
    assert q[0, 1, 0, 0] == hd and k[0, 0, 0, 0] == h and v[0, 2, 0, 0] == 2 * h + 2 * hd
    torch.testing.assert_close(attn.merge_heads(q), qkv[..., :h])


def test_region_mask_and_sdpa_paths_match_dense(tiny_model: CogLM) -> None:
    ids, pos, _, bias = _inputs(tiny_model.config)
    region = RegionMask.from_regions(12, [[(2, 5), (7, 12)], [(0, 3)]])
    dense = tiny_model(ids, pos, attention_mask=region.dense()[:, None], attention_bias=bias).logits
    chunked = tiny_model(ids, pos, attention_fn=MaskedAttention(region, bias, chunk_size=5)).logits
    sdpa = tiny_model(
        ids, pos, attention_fn=MaskedAttention(region.dense()[:, None], bias, use_sdpa=True)
    ).logits
    torch.testing.assert_close(chunked, dense)
    torch.testing.assert_close(sdpa, dense)  # every row of an eq.-(1) mask sees a key


def test_gradient_checkpointing_same_gradients(tiny_config: CogLMConfig) -> None:
    ids, pos, mask, bias = _inputs(tiny_config)
    grads = []
    for flag in (False, True):
        torch.manual_seed(0)
        model = CogLM(tiny_config, dtype=torch.float64).train()
        model.gradient_checkpointing = flag
        model(ids, pos, attention_mask=mask, attention_bias=bias).logits.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_inputs_embeds_and_validation(tiny_model: CogLM) -> None:
    ids, pos, _, _ = _inputs(tiny_model.config)
    emb = tiny_model.embed(ids, pos)
    torch.testing.assert_close(
        tiny_model(None, None, inputs_embeds=emb).logits, tiny_model(ids, pos).logits
    )
    with pytest.raises(ValueError, match="input_ids must be in"):
        tiny_model(ids - 1000, pos)
    with pytest.raises(ValueError, match="position_ids"):
        tiny_model(ids, pos[:3])
    with pytest.raises(ValueError, match="bool"):
        tiny_model(ids, pos, attention_mask=torch.ones(12, 12))


def test_logits_mask_selects_positions(tiny_model: CogLM) -> None:
    ids, pos, mask, bias = _inputs(tiny_model.config)
    keep = torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) < 0.5
    full = tiny_model(ids, pos, attention_mask=mask, attention_bias=bias).logits
    part = tiny_model(ids, pos, attention_mask=mask, attention_bias=bias, logits_mask=keep).logits
    torch.testing.assert_close(part, full[keep])


def test_device_and_dtype_are_the_weights() -> None:
    model = CogLM(CogLMConfig.tiny(), device="meta")
    assert model.device == torch.device("meta") and model.dtype == torch.float32
    model = CogLM(CogLMConfig.tiny(), dtype=torch.bfloat16)
    assert model.device == torch.device("cpu") and model.dtype == torch.bfloat16
