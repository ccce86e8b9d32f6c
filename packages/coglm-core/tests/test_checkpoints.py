import os
import pickle
import zipfile

import pytest
import torch

from coglm_core import (
    CogLM,
    CogLMConfig,
    from_pretrained,
    load_sat_checkpoint,
    save_pretrained,
    write_sat_checkpoint,
)


def _ids(config: CogLMConfig):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, config.vocab_size, (2, 9), generator=g), torch.arange(9)


def _mixins(config: CogLMConfig) -> dict[str, torch.Tensor]:
    h = config.hidden_size
    return {
        "mixins.extra_position_embedding.position_embeddings.weight": torch.randn(36, h),
        "mixins.attention_plus.query_key_value.0.weight": torch.randn(3 * h, h),
        "mixins.attention_plus.dense.0.bias": torch.randn(h),
    }


@pytest.mark.parametrize("layout", ["plain", "nested", "file", "parent"])
def test_synthetic_official_checkpoint_round_trip(tiny_model: CogLM, tmp_path, layout: str) -> None:
    config = tiny_model.config
    sd = {**tiny_model.state_dict(), **_mixins(config)}
    half = {k: v.half() for k, v in sd.items()}  # the release stores fp16
    if layout == "nested":
        file = write_sat_checkpoint(tmp_path, half, config, iteration=432000, nested_name="coglm")
        target = tmp_path
    else:
        file = write_sat_checkpoint(tmp_path / "coglm", half, config, iteration=432000)
        target = {"plain": tmp_path / "coglm", "file": file, "parent": tmp_path}[layout]
    assert file.name == "mp_rank_00_model_states.pt" and file.parent.name == "432000"
    ckpt = load_sat_checkpoint(
        target, dtype=torch.float64, base_config=CogLMConfig.tiny(num_layers=7)
    )
    assert ckpt.iteration == "432000" and "np_rng_state" in ckpt.extra_keys
    assert (
        ckpt.config.num_layers == config.num_layers and ckpt.config.vocab_size == config.vocab_size
    )
    assert set(_mixins(config)) <= set(ckpt.state_dict)
    loaded = CogLM(config, device="meta")
    loaded.load_state_dict(ckpt.transformer_state_dict(), assign=True)
    ids, pos = _ids(config)
    reference = CogLM(config, dtype=torch.float64)
    reference.load_state_dict(
        {k: v.double() for k, v in half.items() if k.startswith("transformer.")}
    )
    torch.testing.assert_close(loaded.eval()(ids, pos).logits, reference.eval()(ids, pos).logits)


def test_mismatches_are_all_listed(tiny_model: CogLM, tmp_path) -> None:
    sd = tiny_model.state_dict()
    del sd["transformer.layers.1.mlp.dense_4h_to_h.bias"]
    del sd["transformer.final_layernorm.weight"]
    sd["transformer.position_embeddings.weight"] = torch.zeros(3, 5)
    write_sat_checkpoint(tmp_path, sd, tiny_model.config, iteration=7)
    with pytest.raises(ValueError) as err:
        load_sat_checkpoint(tmp_path, tiny_model.config)
    text = str(err.value)
    assert "3 problems" in text
    assert "missing transformer.layers.1.mlp.dense_4h_to_h.bias" in text
    assert "missing transformer.final_layernorm.weight" in text
    assert "position_embeddings.weight: shape [3, 5], expected [64, 32]" in text


def test_truncated_file(tiny_model: CogLM, tmp_path) -> None:
    file = write_sat_checkpoint(tmp_path, tiny_model.state_dict(), tiny_model.config)
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="unreadable checkpoint"):
        load_sat_checkpoint(tmp_path, tiny_model.config)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_that_runs_code_is_refused(tiny_model: CogLM, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    file = write_sat_checkpoint(tmp_path / "m", tiny_model.state_dict(), tiny_model.config)
    torch.save({"module": tiny_model.state_dict(), "payload": _Evil()}, file)
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_sat_checkpoint(tmp_path / "m", tiny_model.config)
    assert not (tmp_path / "PWNED").exists()
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"module": {}}))
    with pytest.raises(ValueError):
        load_sat_checkpoint(plain, tiny_model.config)


def test_missing_paths(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_sat_checkpoint(tmp_path / "nope")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "latest").write_text("5")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_sat_checkpoint(tmp_path / "m")


def test_save_and_from_pretrained(tiny_model: CogLM, tmp_path) -> None:
    save_pretrained(tiny_model, tmp_path / "p")
    assert sorted(os.listdir(tmp_path / "p")) == ["config.json", "model.safetensors"]
    loaded = from_pretrained(tmp_path / "p").eval()
    ids, pos = _ids(tiny_model.config)
    torch.testing.assert_close(loaded(ids, pos).logits, tiny_model(ids, pos).logits)
    assert next(loaded.parameters()).dtype == torch.float64
    assert (
        from_pretrained(
            tmp_path / "p", dtype=torch.float32
        ).transformer.word_embeddings.weight.dtype
        == torch.float32
    )


def test_numpy1_rng_pickle_names_are_allowed(tiny_model: CogLM, tmp_path) -> None:
    # DeepSpeed files written under numpy 1.x name numpy.core.multiarray._reconstruct.
    file = write_sat_checkpoint(tmp_path, tiny_model.state_dict(), tiny_model.config)
    with zipfile.ZipFile(file) as zin:
        entries = {name: zin.read(name) for name in zin.namelist()}
    pkl = next(name for name in entries if name.endswith("data.pkl"))
    new_name = b"cnumpy.core.multiarray\n_reconstruct\n"
    entries[pkl] = entries[pkl].replace(b"cnumpy._core.multiarray\n_reconstruct\n", new_name)
    assert new_name in entries[pkl]
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as zout:
        for name, data in entries.items():
            zout.writestr(name, data)
    ckpt = load_sat_checkpoint(tmp_path, tiny_model.config)
    assert "np_rng_state" in ckpt.extra_keys
