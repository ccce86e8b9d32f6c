import pytest

from coglm_core import CogLMConfig


def test_6b_preset_matches_reference() -> None:
    c = CogLMConfig.cogview2_6b()
    assert (c.num_layers, c.hidden_size, c.num_attention_heads) == (48, 3072, 48)
    assert (c.vocab_size, c.max_sequence_length, c.head_dim, c.mlp_hidden_size) == (
        150010,
        1024,
        64,
        12288,
    )
    assert (c.boi_position, c.image_position_offset, c.num_image_positions) == (512, 513, 400)
    assert (c.boi_id, c.boe_id, c.boc_id, c.pad_id) == (150000, 150001, 150002, 20003)


@pytest.mark.parametrize("preset", ["cogview2_6b", "small", "tiny"])
def test_json_round_trip(preset: str, tmp_path) -> None:
    c = getattr(CogLMConfig, preset)(hidden_dropout=0.0)
    assert CogLMConfig.from_json(c.to_json()) == c
    c.save(tmp_path / "c.json")
    assert CogLMConfig.load(tmp_path / "c.json") == c


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_size": 30}, "divisible"),
        ({"max_sequence_length": 50}, "max_sequence_length"),
        ({"boi_id": 500}, "boi_id"),
        ({"hidden_dropout": 1.5}, "hidden_dropout"),
    ],
)
def test_invalid_configs_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CogLMConfig.tiny(**kwargs)


def test_unknown_json_key_raises() -> None:
    with pytest.raises(ValueError, match="unknown CogLMConfig fields"):
        CogLMConfig.from_dict({"num_layers": 2, "bogus": 1})
