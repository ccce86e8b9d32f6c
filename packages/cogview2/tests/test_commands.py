"""The pipeline CLI commands, through a parser built like cli.py's."""

from __future__ import annotations

import argparse

import pytest
from PIL import Image

from cogview2._commands import add_pipeline_commands


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="cogview2")
    add_pipeline_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_generate_writes_one_png_per_image_and_a_grid(tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red apple\n\n熊猫\n", encoding="utf-8")
    assert (
        _run(
            "generate",
            "--prompts-file",
            str(prompts),
            "-n",
            "2",
            "--seed",
            "0",
            "-o",
            str(tmp_path / "out"),
            "--tiny",
            "--quiet",
            "--stages",
            "coarse",
            "--candidates",
            "3",
        )
        == 0
    )
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert (tmp_path / "out" / "manifest.jsonl").is_file()  # --prompts-file: batch_generation
    assert names == [
        "000-a-red-apple-0.png",
        "000-a-red-apple-1.png",
        "000-a-red-apple-grid.png",
        "001-熊猫-0.png",
        "001-熊猫-1.png",
        "001-熊猫-grid.png",
    ]
    with Image.open(tmp_path / "out" / "000-a-red-apple-grid.png") as grid:
        assert grid.size == (192, 96)


def test_missing_weights_and_prompt_are_clear_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="--weights DIR"):
        _run("info", "--weights", str(tmp_path / "none"))
    with pytest.raises(ValueError, match="give a prompt"):
        _run("generate", "--weights", str(tmp_path / "none"))


def test_generate_guidance_flag_reaches_stage_1(tmp_path) -> None:
    def pixels(*extra: str) -> bytes:
        out = tmp_path / "-".join(extra or ("plain",))
        argv = ["generate", "a cat", "-n", "1", "--seed", "1", "-o", str(out), "--tiny"]
        _run(*argv, "--quiet", "--stages", "coarse", "--no-grid", *extra)
        with Image.open(out / "000-a-cat-0.png") as im:
            return im.tobytes()

    assert pixels("--guidance", "1") == pixels()
    assert pixels("--guidance", "5") != pixels()
    with pytest.raises(ValueError, match="guidance_scale must be >= 0"):
        pixels("--guidance", "-2")


def test_complete_fill_flag_chooses_infilling_or_composition(tmp_path) -> None:
    image = tmp_path / "in.png"
    Image.new("RGB", (96, 96), (200, 40, 60)).save(image)

    def pixels(fill: str) -> bytes:
        out = tmp_path / fill
        argv = ["complete", "a cat", "--image", str(image), "--box", ".25", ".25", ".75", ".75"]
        _run(*argv, "-n", "1", "--seed", "0", "-o", str(out), "--tiny", "--quiet", "--fill", fill)
        with Image.open(out / "complete-a-cat-0.png") as im:
            assert im.getpixel((2, 2)) == (200, 40, 60)  # outside the box: the input's own
            return im.tobytes()

    assert pixels("infill") != pixels("compose")
    with pytest.raises(SystemExit):
        pixels("paste")  # argparse: not one of the choices
