"""Weight-only int8 quantisation: `Int8Linear`, `quantize_linears_int8`, `int8_weight_bytes`."""

from __future__ import annotations

import copy
import gc
import weakref
from pathlib import Path

import pytest
import torch
from torch import nn

from coglm_core import (
    CogLM,
    CogLMConfig,
    Int8Linear,
    generate,
    int8_weight_bytes,
    multinomial_sampler,
    quantize_linears_int8,
    save_pretrained,
    text_image_generation_mask,
    text_image_position_ids,
)

U32 = 2.0**-24  # unit roundoff of float32
LINEAR_NAMES = (
    "attention.query_key_value",
    "attention.dense",
    "mlp.dense_h_to_4h",
    "mlp.dense_4h_to_h",
)


def _linear(in_features: int, out_features: int, *, bias: bool = True, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():  # rows of different magnitudes, so the per-channel scales differ
        linear.weight.mul_(torch.rand(out_features, 1) * 4 + 0.1)
        if bias:
            linear.bias.normal_()
    return linear


# --------------------------------------------------------------------------------- Int8Linear
def test_matches_float64_reference_of_the_dequantised_weight() -> None:
    linear = _linear(48, 24)
    layer = Int8Linear.from_linear(linear)
    assert layer.weight.dtype == torch.int8 and layer.weight.shape == (24, 48)
    assert layer.weight_scale.dtype == torch.float32 and layer.weight_scale.shape == (24,)
    assert int(layer.weight.abs().max()) == 127  # the largest entry of each row maps to ±127
    w64 = layer.weight.double() * layer.weight_scale.double()[:, None]
    # int8 · float32 is one correctly rounded float32 product.
    assert torch.equal(layer.dequantize(torch.float32), w64.float())
    x = torch.randn(5, 7, 48)
    y = layer(x)
    y64 = x.double() @ w64.T + linear.bias.double()
    # Float32 dot product of n terms plus the bias: |error| <= (n + 1)·u·(|x|·|w| + |b|).
    bound = (48 + 2) * U32 * (x.double().abs() @ w64.abs().T + linear.bias.double().abs())
    assert y.dtype == torch.float32
    assert ((y.double() - y64).abs() <= bound).all()


def test_quantisation_error_is_within_half_a_step() -> None:
    linear = _linear(64, 32, seed=1)
    layer = Int8Linear.from_linear(linear)
    w, scale = linear.weight.detach().double(), layer.weight_scale.double()
    torch.testing.assert_close(scale, w.abs().amax(1) / 127)
    # Round to nearest: |w - q·s| <= s/2, plus the float32 roundings of w/s and q·s (≤ 127u·s each).
    step = scale[:, None] * (0.5 + 254 * U32)
    err_w = (w - layer.dequantize(torch.float64)).abs()
    assert (err_w <= step).all()
    # So each output moves by at most Σ_j |x_j|·s_i/2, plus float32 rounding of both products.
    x = torch.randn(9, 64)
    with torch.no_grad():
        y_ref, y_q = linear(x).double(), layer(x).double()
    xd = x.double()
    rounding = 2 * (64 + 2) * U32 * (xd.abs() @ w.abs().T * 1.01 + linear.bias.double().abs())
    bound = xd.abs().sum(1, keepdim=True) * step.squeeze(1)[None] + rounding
    err_y = (y_q - y_ref).abs()
    assert (err_y <= bound).all()
    assert err_y.max() > 0  # it really is quantised


def test_zero_rows_and_no_bias() -> None:
    linear = _linear(32, 8, bias=False, seed=2)
    with torch.no_grad():
        linear.weight[3] = 0.0
    layer = Int8Linear.from_linear(linear)
    assert layer.bias is None and "bias" not in layer.state_dict()
    assert layer.weight_scale[3] == 1.0 and (layer.weight[3] == 0).all()
    assert torch.isfinite(layer.weight_scale).all()
    y = layer(torch.randn(4, 32))
    assert torch.isfinite(y).all() and (y[:, 3] == 0).all() and (y[:, :3] != 0).all()
    assert "bias=False" in repr(layer) and "in_features=32, out_features=8" in repr(layer)
    assert (layer.in_features, layer.out_features) == (32, 8)


def test_bf16_input_gives_bf16_output() -> None:
    linear = _linear(40, 16, seed=3).to(torch.bfloat16)
    layer = Int8Linear.from_linear(linear)
    assert layer.bias is not None and layer.bias.dtype == torch.bfloat16
    x = torch.randn(6, 40)
    y = layer(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), layer(x), rtol=2e-2, atol=2e-2)
    float_layer = Int8Linear.from_linear(_linear(40, 16, seed=3))  # float32 layer, bf16 input
    assert float_layer(x.bfloat16()).dtype == torch.bfloat16


def test_dtype_casts_keep_int8_weight_and_float32_scale() -> None:
    layer = Int8Linear.from_linear(_linear(24, 12, seed=4))
    weight, scale = layer.weight.clone(), layer.weight_scale.clone()
    for cast in (
        lambda m: m.to(torch.bfloat16),
        lambda m: m.half(),
        lambda m: m.double(),
        lambda m: m.float(),
    ):
        cast(layer)
        assert layer.weight.dtype == torch.int8 and torch.equal(layer.weight, weight)
        assert layer.weight_scale.dtype == torch.float32 and torch.equal(layer.weight_scale, scale)
    assert layer.bias is not None and layer.bias.dtype == torch.float32
    layer.to(device="meta", dtype=torch.bfloat16)  # a device move together with a cast
    assert layer.weight.is_meta and layer.weight.dtype == torch.int8
    assert layer.weight_scale.is_meta and layer.weight_scale.dtype == torch.float32
    assert layer.bias is not None and layer.bias.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("bias", "dtype"), [(True, torch.bfloat16), (True, torch.float32), (False, torch.float16)]
)
def test_int8_weight_bytes_is_exact(bias: bool, dtype: torch.dtype) -> None:
    layer = Int8Linear.from_linear(_linear(56, 20, bias=bias, seed=5).to(dtype))
    held = sum(t.nbytes for t in layer.buffers())
    assert held == int8_weight_bytes(56, 20, bias=bias, bias_bytes=dtype.itemsize)


def test_argument_validation() -> None:
    linear = _linear(8, 4, seed=6)
    with pytest.raises(TypeError, match=r"nn\.Linear"):
        Int8Linear.from_linear(nn.Conv1d(8, 4, 1))  # type: ignore[arg-type]
    with torch.no_grad():
        linear.weight[1, 2] = float("nan")
    with pytest.raises(ValueError, match="inf or NaN"):
        Int8Linear.from_linear(linear)
    linear.weight = nn.Parameter(
        torch.randint(1, 9, (4, 8), dtype=torch.int32), requires_grad=False
    )
    with pytest.raises(ValueError, match="floating"):
        Int8Linear.from_linear(linear)
    with pytest.raises(ValueError, match="floating"):
        quantize_linears_int8(nn.Sequential(linear))
    with pytest.raises(ValueError, match="from_linear"):
        quantize_linears_int8(_linear(8, 4))
    with pytest.raises(ValueError, match="must be > 0"):
        int8_weight_bytes(0, 4)
    with pytest.raises(ValueError, match="must be > 0"):
        Int8Linear(8, 0)


# --------------------------------------------------------------------------------- any module
def test_tied_and_shared_linears() -> None:
    torch.manual_seed(7)
    shared = nn.Linear(16, 16)
    model = nn.ModuleDict(
        {
            "embed": nn.Embedding(32, 16),
            "head": nn.Linear(16, 32, bias=False),
            "a": nn.Sequential(shared, nn.GELU()),
            "b": nn.Sequential(shared),
        }
    )
    model["head"].weight = model["embed"].weight  # tied: quantising would untie it
    assert quantize_linears_int8(model) == 1
    assert type(model["head"]) is nn.Linear and model["head"].weight is model["embed"].weight
    assert isinstance(model["a"][0], Int8Linear) and model["a"][0] is model["b"][0]
    assert quantize_linears_int8(model) == 0  # idempotent


# --------------------------------------------------------------------------------- CogLM
@pytest.fixture
def float_model() -> CogLM:
    config = CogLMConfig.tiny(
        hidden_dropout=0.0, attention_dropout=0.0, hidden_size=64, init_std=0.05
    )
    torch.manual_seed(0)
    model = CogLM(config).eval()
    with torch.no_grad():  # non-trivial LayerNorm affine maps and biases
        for name, p in model.named_parameters():
            if "layernorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture
def quantised(float_model: CogLM) -> CogLM:
    model = copy.deepcopy(float_model)
    assert quantize_linears_int8(model) == 4 * model.config.num_layers
    return model


def _inputs(config: CogLMConfig, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (2, 20), generator=g), torch.arange(20)


def test_every_transformer_linear_is_replaced(float_model: CogLM, quantised: CogLM) -> None:
    assert not any(isinstance(m, nn.Linear) for m in quantised.modules())
    for layer in quantised.transformer.layers:
        for name in LINEAR_NAMES:
            assert isinstance(layer.get_submodule(name), Int8Linear)
    # The head is tied to word_embeddings (no Linear): left in floating point, untouched.
    emb = quantised.transformer.word_embeddings
    assert type(emb) is nn.Embedding and emb.weight.dtype == torch.float32
    assert torch.equal(emb.weight, float_model.transformer.word_embeddings.weight)
    assert quantised.num_parameters() == float_model.num_parameters()
    assert quantize_linears_int8(quantised) == 0


def test_replaced_linears_are_freed(float_model: CogLM) -> None:
    ref = weakref.ref(float_model.transformer.layers[0].mlp.dense_h_to_4h)
    quantize_linears_int8(float_model)
    gc.collect()
    assert ref() is None


def test_logits_stay_close_to_the_float_model(float_model: CogLM, quantised: CogLM) -> None:
    ids, pos = _inputs(float_model.config)
    with torch.no_grad():
        ref = float_model(ids, pos).logits
        got = quantised(ids, pos).logits
        bf16 = copy.deepcopy(float_model).to(torch.bfloat16)(ids, pos).logits
    assert ref is not None and got is not None and bf16 is not None
    assert not torch.equal(got, ref)  # quantisation really happened

    def rel(x: torch.Tensor) -> float:
        return float((x - ref).norm() / ref.norm())

    # Yardstick: the error of running the whole model in bf16 (measured ≈ 0.7%; int8 ≈ 0.8%).
    assert rel(got) < 0.03
    assert rel(got) < 3 * rel(bf16)


def test_linear_weight_bytes_shrink_about_4x(float_model: CogLM, quantised: CogLM) -> None:
    def linear_bytes(model: CogLM) -> tuple[int, int]:
        weights = biases = 0
        for layer in model.transformer.layers:
            for name in LINEAR_NAMES:
                m = layer.get_submodule(name)
                weights += m.weight.nbytes + getattr(m, "weight_scale", m.weight[:0]).nbytes
                biases += m.bias.nbytes
        return weights, biases

    (w_float, b_float), (w_int8, b_int8) = linear_bytes(float_model), linear_bytes(quantised)
    assert b_int8 == b_float  # biases keep the model dtype
    assert 3.5 < w_float / w_int8 <= 4.0  # float32 -> int8 plus one float32 scale per row
    h, f = float_model.config.hidden_size, float_model.config.mlp_hidden_size
    per_layer = sum(
        int8_weight_bytes(i, o, bias=True, bias_bytes=4)
        for i, o in ((h, 3 * h), (h, h), (h, f), (f, h))
    )
    assert w_int8 + b_int8 == float_model.config.num_layers * per_layer

    def total(model: CogLM) -> int:
        return sum(t.nbytes for t in [*model.parameters(), *model.buffers()])

    assert total(float_model) - total(quantised) == (w_float - w_int8)


def test_cached_generation_runs_and_equals_recompute(quantised: CogLM) -> None:
    c = quantised.config
    text_len, n = 5, c.num_image_positions
    tokens = torch.full((2, text_len + 1 + n), -1)
    tokens[:, :text_len] = torch.randint(
        70, 120, (text_len,), generator=torch.Generator().manual_seed(3)
    )
    tokens[:, text_len] = c.boi_id
    kwargs = {
        "attention_mask": text_image_generation_mask(text_len, n),
        "sampler": multinomial_sampler(),
        "logits_range": (0, c.num_image_tokens),
    }
    pos = text_image_position_ids(text_len, c)
    runs = [
        generate(
            quantised,
            tokens,
            pos,
            generator=torch.Generator().manual_seed(0),
            use_cache=use_cache,
            **kwargs,
        )
        for use_cache in (True, False)
    ]
    assert torch.equal(runs[0], runs[1])
    assert (runs[0][:, text_len + 1 :] >= 0).all() and (
        runs[0][:, text_len + 1 :] < c.num_image_tokens
    ).all()


def test_state_dict_round_trip(quantised: CogLM) -> None:
    state = quantised.state_dict()
    assert sum(k.endswith(".weight_scale") for k in state) == 4 * quantised.config.num_layers
    ids, pos = _inputs(quantised.config, seed=1)
    with torch.no_grad():
        ref = quantised(ids, pos).logits
    # Into a meta skeleton (no float weights are ever allocated) and into a random float model.
    meta = CogLM(quantised.config, device="meta")
    quantize_linears_int8(meta)
    meta.load_state_dict(state, assign=True)
    torch.manual_seed(123)
    other = CogLM(quantised.config)
    quantize_linears_int8(other)
    other.load_state_dict(state)
    for model in (meta.eval(), other.eval()):
        with torch.no_grad():
            assert torch.equal(model(ids, pos).logits, ref)


def test_bfloat16_cast_of_a_quantised_model(quantised: CogLM) -> None:
    scales = {
        n: m.weight_scale.clone() for n, m in quantised.named_modules() if isinstance(m, Int8Linear)
    }
    ids, pos = _inputs(quantised.config, seed=2)
    with torch.no_grad():
        ref = quantised(ids, pos).logits
        quantised.to(torch.bfloat16)
        got = quantised(ids, pos).logits
    for name, m in quantised.named_modules():
        if isinstance(m, Int8Linear):
            assert m.weight.dtype == torch.int8
            assert m.weight_scale.dtype == torch.float32 and torch.equal(
                m.weight_scale, scales[name]
            )
            assert m.bias is not None and m.bias.dtype == torch.bfloat16
    assert quantised.transformer.word_embeddings.weight.dtype == torch.bfloat16
    assert ref is not None and got is not None
    assert float((got - ref).norm() / ref.norm()) < 0.03


def test_skip_keeps_named_layers(float_model: CogLM) -> None:
    seen: list[str] = []

    def skip(name: str, linear: nn.Linear) -> bool:
        seen.append(name)
        return name.endswith("mlp.dense_4h_to_h")

    layers = float_model.config.num_layers
    assert quantize_linears_int8(float_model, skip=skip) == 3 * layers
    assert "transformer.layers.1.attention.query_key_value" in seen and len(seen) == 4 * layers
    for layer in float_model.transformer.layers:
        assert type(layer.mlp.dense_4h_to_h) is nn.Linear
        assert isinstance(layer.mlp.dense_h_to_4h, Int8Linear)


def test_save_pretrained_refuses_a_quantised_model(quantised: CogLM, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quantize_linears_int8 after from_pretrained"):
        save_pretrained(quantised, tmp_path / "q")
