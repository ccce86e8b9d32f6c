"""What a new user hits on the command line: one-line errors (exit 2, nothing written), help
texts, seeds, grids and threads."""

from __future__ import annotations

import argparse
import shutil

import pytest
import torch
from PIL import Image

from cogview2 import DEMO_WEIGHTS, CogView2Pipeline
from cogview2 import _commands as commands
from cogview2.cli import build_parser, main


def _fails(capsys, *argv: str) -> str:
    """Run the CLI; it must exit 2 with exactly one line on stderr. Returns that line."""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _no_loading(monkeypatch) -> None:
    def refuse(args):
        raise AssertionError("the pipeline must not be loaded before the arguments are checked")

    monkeypatch.setattr(commands, "_load", refuse)


def test_output_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    _no_loading(monkeypatch)
    target = tmp_path / "taken.png"
    target.write_bytes(b"mine")
    line = _fails(capsys, "generate", "red apple", "-o", str(target), "--threads", "1")
    assert "-o/--output" in line and "is a file" in line
    assert target.read_bytes() == b"mine" and sorted(tmp_path.iterdir()) == [target]
    image = tmp_path / "in.png"
    Image.new("RGB", (480, 480), "white").save(image)
    line = _fails(capsys, "complete", "pizza", "--image", str(image), "--box", "0", "0", ".5", ".5",
                  "-o", str(target), "--threads", "1")  # fmt: skip
    assert "is a file" in line


@pytest.mark.parametrize(
    "part",
    [
        "coglm/model.safetensors",
        "dsr/mixins.safetensors",
        "itersr/base/model.safetensors",
        "itersr/mixins.safetensors",
        "tokenizer/image.safetensors",
    ],
)
def test_a_truncated_weights_file_is_named(part, tmp_path, capsys):
    folder = tmp_path / "weights"
    shutil.copytree(DEMO_WEIGHTS, folder)
    data = (folder / part).read_bytes()
    (folder / part).write_bytes(data[: len(data) // 2])
    line = _fails(capsys, "info", "--weights", str(folder), "--threads", "1")
    assert str(folder / part) in line and "Traceback" not in line
    with pytest.raises(ValueError, match=str(folder / part)):
        CogView2Pipeline.from_pretrained(folder)


@pytest.mark.parametrize("command", ["caption", "complete"])
def test_an_image_that_is_not_one_or_a_folder_is_named(command, tmp_path, capsys, monkeypatch):
    _no_loading(monkeypatch)
    text = tmp_path / "notimage.txt"
    text.write_text("hello", encoding="utf-8")
    args = ["--image", str(text), "--threads", "1"]
    if command == "complete":
        args = ["pizza", "--box", "0.3", "0.3", "0.7", "0.7", "-o", str(tmp_path / "o"), *args]
    line = _fails(capsys, command, *args)
    assert "not an image" in line and str(text) in line
    args[args.index(str(text))] = str(tmp_path)
    line = _fails(capsys, command, *args)
    assert "is a directory" in line and "not found" not in line


def test_model_offload_to_a_missing_cuda_device_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    pipe = CogView2Pipeline.from_pretrained("demo")
    with pytest.raises(ValueError, match="is not available: this torch has no CUDA device"):
        pipe.enable_model_cpu_offload("cuda")
    with pytest.raises(ValueError, match="no CUDA device"):
        CogView2Pipeline.from_pretrained("demo", device="cuda")
    with pytest.raises(ValueError, match="no CUDA device"):
        pipe.to("cuda")


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["generate", "red apple", "-n", "0"], "-n/--num-images"),
        (["generate", "red apple", "--candidates", "x"], "--candidates"),
        (["caption", "--image", "a.png", "-n", "-2"], "-n/--num-captions"),
        (["caption", "--image", "a.png", "--max-length", "0"], "--max-length"),
    ],
)
def test_bad_counts_name_the_cli_option(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {option}: expected a whole number >= 1" in last
    assert "num_images" not in last


def test_missing_weights_point_to_the_demo_weights_not_to_tiny(tmp_path, capsys):
    line = _fails(capsys, "info", "--weights", str(tmp_path / "nope"), "--threads", "1")
    assert "demo weights" in line and "--tiny" not in line


def test_a_prompt_too_long_for_a_plain_style_suggests_no_style_change():
    pipe = CogView2Pipeline.from_pretrained("demo")
    long = "red apple " * 500
    with pytest.raises(ValueError, match=r"accepted: shorten it$"):
        pipe.encode_prompt(long, "none")
    with pytest.raises(ValueError, match=r"shorten it, or use a style that adds no words"):
        pipe.encode_prompt(long, "mainbody")


def test_caption_defaults_to_seed_0_like_generate(tmp_path, capsys):
    image = tmp_path / "in.png"
    Image.new("RGB", (160, 160), (220, 40, 40)).save(image)
    runs = []
    for _ in range(2):
        assert main(["caption", "--image", str(image), "--threads", "1", "--quiet"]) == 0
        runs.append(capsys.readouterr().out)
    assert runs[0] == runs[1]
    assert main(["caption", "--image", str(image), "--seed", "0", "--threads", "1"]) == 0
    assert capsys.readouterr().out == runs[0]
    parser = build_parser()
    for command, what in (("caption", "captions"), ("generate", "images")):
        sub = _subparser(parser, command)
        seed = next(a for a in sub._actions if "--seed" in a.option_strings)
        assert seed.default == 0 and what in seed.help


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    group = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return group.choices[name]


def test_help_describes_the_tool_and_every_option():
    parser = build_parser()
    assert "argparse" not in parser.description and "images" in parser.description
    for name in ("generate", "complete", "caption", "info", "convert"):
        sub = _subparser(parser, name)
        assert sub.description, name
        for action in sub._actions:
            assert action.help, (name, action.option_strings or action.dest)
        text = sub.format_help()
        if name in ("generate", "complete"):
            assert "(default: 4)" in text and "(default: out)" in text


@pytest.mark.parametrize(
    ("n", "shape"),
    [
        (1, (1, 1)),
        (2, (1, 2)),
        (3, (2, 2)),
        (4, (2, 2)),
        (5, (2, 3)),
        (6, (2, 3)),
        (8, (3, 3)),
        (9, (3, 3)),
        (10, (3, 4)),
    ],
)
def test_grid_is_the_most_square_with_no_empty_row(n, shape):
    rows, cols = commands.grid_shape(n)
    assert (rows, cols) == shape
    assert (rows - 1) * cols < n <= rows * cols  # the last row holds at least one image


def test_demo_weights_have_a_public_name():
    assert (DEMO_WEIGHTS / "pipeline.json").is_file()
    assert DEMO_WEIGHTS == commands.DEFAULT_WEIGHTS
    pipe = CogView2Pipeline.from_pretrained("demo")
    assert pipe.config.default_style == "plain"


def test_threads_option_and_environment(monkeypatch, capsys, tmp_path):
    before = torch.get_num_threads()
    try:
        image = tmp_path / "in.png"
        Image.new("RGB", (160, 160), "white").save(image)
        assert main(["caption", "--image", str(image), "--threads", "1", "--max-length", "2"]) == 0
        assert torch.get_num_threads() == 1
        line = _fails(capsys, "caption", "--image", str(image), "--threads", "0")
        assert "--threads" in line and "'auto' or a whole number >= 1" in line
        monkeypatch.setenv("COGVIEW2_THREADS", "many")
        line = _fails(capsys, "caption", "--image", str(image))
        assert "COGVIEW2_THREADS" in line
        monkeypatch.setenv("COGVIEW2_THREADS", "1")
        assert main(["caption", "--image", str(image), "--max-length", "2"]) == 0
        assert torch.get_num_threads() == 1
        for command in ("generate", "train", "eval", "serve"):
            assert "--threads" in _subparser(build_parser(), command).format_help()
    finally:
        torch.set_num_threads(before)


def test_python_dash_m_runs_the_command_line():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cogview2", "generate", "--help"],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0 and "--threads" in done.stdout


def test_auto_threads_use_the_cores_idle_at_start(monkeypatch):
    import psutil

    from cogview2.threads import idle_cores, parse_threads

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    for busy, want in (([0.0, 0.0], 2), ([100.0, 3.0], 1), ([55.0, 50.0], 1), ([10.0, 15.0], 2)):
        monkeypatch.setattr(psutil, "cpu_percent", lambda interval, percpu, b=busy: b)
        assert idle_cores(0.0) == want, busy
    assert parse_threads("auto") is None and parse_threads(None) is None
    assert parse_threads("3") == 3 and parse_threads(2) == 2
    for bad in ("0", "-1", "two", "1.5", True):
        with pytest.raises(ValueError, match="'auto' or a whole number >= 1"):
            parse_threads(bad)
