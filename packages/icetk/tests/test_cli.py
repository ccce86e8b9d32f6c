"""The ``icetk`` command: train-text, train-image (with resume), info, encode, decode."""

import json

import numpy as np
import pytest
from PIL import Image

from icetk import IceTokenizer
from icetk.cli import main
from icetk.data import shapes_images


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory, corpus_path):
    root = tmp_path_factory.mktemp("cli")
    imgs = root / "pngs"
    imgs.mkdir()
    for i, x in enumerate(shapes_images(3, 32)):
        Image.fromarray((x.permute(1, 2, 0) * 255).byte().numpy()).save(imgs / f"{i}.png")
    out = root / "tok"
    assert main(["train-text", str(corpus_path), "--output", str(out), "--vocab-size", "400",
                 "--num-image-tokens", "32"]) == 0  # fmt: skip
    args = ["train-image", str(imgs), "--output", str(out), "--preset", "tiny", "--image-size", "32",
            "--batch-size", "2", "--checkpoint-every", "1", "--log-every", "1"]  # fmt: skip
    assert main([*args, "--steps", "1"]) == 0
    assert main([*args, "--steps", "2"]) == 0  # resumes from step 1
    return root


def test_train_commands_write_a_loadable_tokenizer(trained_folder) -> None:
    out = trained_folder / "tok"
    log = [json.loads(line) for line in (out / "train_image_log.jsonl").read_text().splitlines()]
    assert [m["step"] for m in log] == [1, 2]
    assert {"loss", "psnr", "usage", "perplexity"} <= set(log[-1])
    tok = IceTokenizer.from_pretrained(out)
    assert tok.num_image_tokens == 32 and tok.image.config.compressions == (8, 16)


def test_info(trained_folder, capsys) -> None:
    assert main(["info", str(trained_folder / "tok")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (
        info["num_image_tokens"] == 32
        and info["special_tokens"]["<start_of_image>"] == info["vocab_size"] - 3
    )


def test_encode_decode_images_and_text(trained_folder, capsys, tmp_path) -> None:
    tok = str(trained_folder / "tok")
    pngs = sorted(str(p) for p in (trained_folder / "pngs").iterdir())
    assert main(["encode", "--tokenizer", tok, *pngs, "--output", str(tmp_path / "ids.npy")]) == 0
    ids = np.load(tmp_path / "ids.npy")
    assert ids.shape == (3, 4, 4)
    assert (
        main(
            [
                "decode",
                "--tokenizer",
                tok,
                "--ids",
                str(tmp_path / "ids.npy"),
                "--output-dir",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    capsys.readouterr()
    assert main(["encode", "--tokenizer", tok, "--text", "一只猫<start_of_image>"]) == 0
    text_ids = json.loads(capsys.readouterr().out)
    assert main(["decode", "--tokenizer", tok, "--text-ids", ",".join(map(str, text_ids))]) == 0
    assert capsys.readouterr().out.strip() == "一只猫<start_of_image>"


def test_errors_are_reported_not_raised(tmp_path, capsys) -> None:
    assert main(["info", str(tmp_path)]) == 2
    assert "looked for icetk_config.json" in capsys.readouterr().err
