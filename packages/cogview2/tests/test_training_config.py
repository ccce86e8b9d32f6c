"""Recipe TOML files: the shipped ones parse; mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cogview2.training import TrainingConfig, load_training_config

CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("name", ["emoji-demo.toml", "emoji-demo-twemoji.toml", "tiny-test.toml"])
def test_shipped_configs_parse(name):
    cfg = load_training_config(CONFIGS / name)
    assert cfg.itersr.mask_ratios == (0.2, 0.4, 0.6, 0.8, 0.9)
    assert set(cfg.stage_dirs) == {"text_tokenizer", "vqvae", "tokenize", "coglm", "dsr", "itersr"}
    assert cfg.stage_dirs["coglm"] == Path(cfg.workdir) / "coglm"


@pytest.mark.parametrize("name", ["emoji-demo.toml", "emoji-demo-twemoji.toml"])
def test_demo_config_is_sized_for_the_budget(name):
    cfg = load_training_config(CONFIGS / name)
    assert cfg.assemble.dtype == "float16" and cfg.assemble.max_megabytes <= 40
    assert (cfg.data.low_size, cfg.data.high_size) == (160, 480)
    assert cfg.dsr.text_slots <= cfg.tokenize.text_slots


def test_mistakes_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"\[coglm\]: unknown keys \['layers'\]"):
        TrainingConfig.from_dict({"coglm": {"layers": 3}})
    with pytest.raises(ValueError, match="unknown sections"):
        TrainingConfig.from_dict({"cogllm": {}})
    with pytest.raises(ValueError, match="mask_ratios"):
        TrainingConfig.from_dict({"itersr": {"mask_ratios": [0.0, 0.5]}})
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TrainingConfig.from_dict({"dsr": {"steps": 0}})
    with pytest.raises(ValueError, match="high_images must be >= 0"):
        TrainingConfig.from_dict({"tokenize": {"high_images": -1}})
    with pytest.raises(ValueError, match="skin_tones must be true or false, got 'false'"):
        TrainingConfig.from_dict({"data": {"skin_tones": "false"}})
    with pytest.raises(ValueError, match=r"\[coglm\] text_dropout must be a number in \[0, 1\)"):
        TrainingConfig.from_dict({"coglm": {"text_dropout": 1.0}})
    with pytest.raises(ValueError, match="guidance_scale must be >= 0"):
        TrainingConfig.from_dict({"assemble": {"guidance_scale": -1}})
    with pytest.raises(ValueError, match=r"fill must be one of \['infill', 'compose'\]"):
        TrainingConfig.from_dict({"assemble": {"completion_fill": "paste"}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[coglm\nsteps = 1\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_training_config(bad)
    with pytest.raises(FileNotFoundError):
        load_training_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("emoji-demo.toml", "emoji-demo-twemoji.toml"),
        ("emoji-demo-twemoji.toml", "emoji-demo-groups.toml"),
    ],
)
def test_each_demo_config_continues_the_previous_one_with_the_same_models(first, then):
    base, cont = load_training_config(CONFIGS / first), load_training_config(CONFIGS / then)
    for section in ("text_tokenizer", "vqvae", "tokenize", "dsr", "itersr"):
        assert getattr(cont, section) == getattr(base, section), section
    same = ("num_layers", "hidden_size", "num_attention_heads", "variant", "lr", "batch_size")
    assert all(getattr(cont.coglm, k) == getattr(base.coglm, k) for k in same)
    assert cont.coglm.steps > base.coglm.steps and cont.coglm.text_dropout > 0
    assert cont.data.train_styles == ("twemoji",) and not cont.data.skin_tones
    assert base.assemble.out != cont.assemble.out and base.workdir != cont.workdir


def test_the_last_demo_configs_update_the_default_weights_in_order():
    """The third chain assembles the default weights; the fourth (super-resolution) and fifth
    (captions) start from them and write them again, in that order."""
    default = "packages/cogview2/src/cogview2/weights/demo"
    chains = ("emoji-demo.toml", "emoji-demo-twemoji.toml", "emoji-demo-groups.toml",
              "emoji-demo-sr.toml", "emoji-demo-captions.toml")  # fmt: skip
    cfgs = {name: load_training_config(CONFIGS / name) for name in chains}
    assert [n for n, c in cfgs.items() if c.assemble.out == default] == list(chains[2:])
    groups = cfgs["emoji-demo-groups.toml"].data.train_groups
    assert groups == ("animals-nature", "food-drink")
    sr, captions = cfgs["emoji-demo-sr.toml"], cfgs["emoji-demo-captions.toml"]
    assert sr.start_from == captions.start_from == default
    assert sr.retrain == ("dsr", "itersr") and captions.retrain == ("coglm",)
    assert sr.data.train_groups == captions.data.train_groups == groups
    assert sr.dsr.train_base and captions.coglm.caption_end
