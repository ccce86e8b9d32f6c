"""IceTokenizer loading and saving: our format, the official pair, bad files."""

import json

import pytest
import torch

from icetk import (
    HVQVAE,
    IceTokenizer,
    VocabularyLayout,
    VQVAEConfig,
    load_official_vqvae,
    save_vqvae,
)
from icetk.text import parse_model


def test_save_and_load_our_format(tiny_tokenizer: IceTokenizer, tmp_path) -> None:
    tiny_tokenizer.save_pretrained(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [
        "icetk_config.json", "image.safetensors", "text.model",
    ]  # fmt: skip
    loaded = IceTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.layout == tiny_tokenizer.layout
    assert loaded.image.config == tiny_tokenizer.image.config
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded.encode_image(x), tiny_tokenizer.encode_image(x))
    text = "猫 cat <start_of_image>"
    assert loaded.encode_text(text) == tiny_tokenizer.encode_text(text)
    assert loaded.vocab_size == tiny_tokenizer.vocab_size
    assert torch.equal(loaded.allowed_ids(["chinese"]), tiny_tokenizer.allowed_ids(["chinese"]))
    assert loaded.language_of(0) == "image"


def _official_text_model(model: bytes) -> bytes:
    """Pad our small model to the official 130000 pieces (filler pieces, very low score)."""
    proto = parse_model(model)
    for i in range(130000 - len(proto.pieces)):
        proto.pieces.add(piece=f"<filler_{i}>", score=-1e4)
    return proto.SerializeToString()


def test_official_pair_loads_and_encodes(text_model, tmp_path) -> None:
    cfg = VQVAEConfig.from_dict({**VQVAEConfig.tiny().to_dict(), "num_codes": 20000})
    torch.manual_seed(0)
    ref = HVQVAE(cfg)
    sd = {k: v.half() for k, v in ref.state_dict().items()}  # the released file is fp16
    sd["loss.extra.weight"] = torch.ones(3)  # unknown keys are ignored, as in icetk
    torch.save({"module": sd}, tmp_path / "ice_image.pt")
    (tmp_path / "ice_text.model").write_bytes(_official_text_model(text_model[0]))

    tok = IceTokenizer.from_pretrained(tmp_path, vqvae_config=cfg)
    assert tok.layout == VocabularyLayout.official()
    ids = tok.encode_text("一只猫<start_of_image>")
    assert ids[-1] == 150000 and all(20000 <= i < 150000 for i in ids[:-1])
    assert tok.encode_text("<start_of_english><start_of_chinese>")[-2:] == [150001, 150002]
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    codes = tok.encode_image(x)
    assert codes.shape == (1, 4, 4) and codes.max() < 20000
    ref.load_state_dict({k: v.float() for k, v in sd.items() if k in ref.state_dict()})
    assert torch.allclose(tok.decode_image(codes), tok.image.normalization.denormalize(
        ref.eval().single_decode_code(codes, 0)), atol=1e-5)  # fmt: skip


def test_official_file_missing_keys_are_listed(tmp_path) -> None:
    sd = HVQVAE(VQVAEConfig.tiny()).state_dict()
    del sd["quantize.embed.weight"], sd["enc.conv_in.bias"]
    torch.save({"module": sd}, tmp_path / "ice_image.pt")
    with pytest.raises(
        ValueError, match=r"2 VQ-VAE keys are missing: enc.conv_in.bias, quantize.embed.weight"
    ):
        load_official_vqvae(tmp_path / "ice_image.pt", VQVAEConfig.tiny())
    with pytest.raises(ValueError, match=r"shape mismatch"):
        torch.save(
            {"module": HVQVAE(VQVAEConfig.tiny(num_codes=8)).state_dict()}, tmp_path / "b.pt"
        )
        load_official_vqvae(tmp_path / "b.pt", VQVAEConfig.tiny())


def test_official_size_file_with_nothing_in_it_lists_all_329_keys(tmp_path) -> None:
    torch.save({"module": {}}, tmp_path / "ice_image.pt")
    with pytest.raises(ValueError, match=r"329 VQ-VAE keys are missing"):
        load_official_vqvae(tmp_path / "ice_image.pt")


class Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ("garbage", "cannot read"),
        ("tensor", "expected \\{'module'"),
        ("no_module", "expected \\{'module'"),
        ("pickle", "cannot read"),
    ],
)
def test_wrong_format_official_files(tmp_path, payload: str, match: str, capsys) -> None:
    path = tmp_path / "ice_image.pt"
    if payload == "garbage":
        path.write_bytes(b"PK\x03\x04 not a zip archive" * 50)
    elif payload == "tensor":
        torch.save(torch.zeros(3), path)
    elif payload == "no_module":
        torch.save({"state_dict": {}}, path)
    else:
        torch.save({"module": Evil()}, path)
    with pytest.raises(ValueError, match=match):
        load_official_vqvae(path, VQVAEConfig.tiny())
    assert "pickled code ran" not in capsys.readouterr().out


def test_missing_files_name_what_was_looked_for(tmp_path, text_model) -> None:
    with pytest.raises(FileNotFoundError, match=r"icetk_config.json.*ice_text.model"):
        IceTokenizer.from_pretrained(tmp_path / "empty")
    (tmp_path / "ice_text.model").write_bytes(_official_text_model(text_model[0]))
    with pytest.raises(
        FileNotFoundError, match=r"ice_image.pt\) not found: looked for .*ice_image.pt"
    ):
        IceTokenizer.from_pretrained(tmp_path)


def test_corrupt_files_in_our_format(tiny_tokenizer: IceTokenizer, tmp_path) -> None:
    root = tiny_tokenizer.save_pretrained(tmp_path / "tok")
    (root / "image.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"image.safetensors"):
        IceTokenizer.from_pretrained(root)
    save_vqvae(HVQVAE(VQVAEConfig.tiny(num_codes=32)), root / "image.safetensors")
    with pytest.raises(ValueError, match=r"shape mismatch"):
        IceTokenizer.from_pretrained(root)
    (root / "text.model").unlink()
    with pytest.raises(FileNotFoundError, match=r"text.model"):
        IceTokenizer.from_pretrained(root)
    (root / "icetk_config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad tokenizer config .*icetk_config.json"):
        IceTokenizer.from_pretrained(root)
    (root / "icetk_config.json").write_text(json.dumps({"layout": tiny_tokenizer.layout.to_dict()}))
    with pytest.raises(ValueError, match=r"train-image"):
        IceTokenizer.from_pretrained(root)


def test_codebook_size_must_match_layout(text_tokenizer) -> None:
    from icetk import ImageTokenizer

    with pytest.raises(ValueError, match=r"65 codes but the layout expects 64"):
        IceTokenizer(text_tokenizer, ImageTokenizer(HVQVAE(VQVAEConfig.tiny(num_codes=65))))
