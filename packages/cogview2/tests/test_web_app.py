"""The Gradio layer and the `serve` command, without a browser."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pytest

from cogview2.web import server
from cogview2.web.app import editor_box, require_gradio


def test_missing_gradio_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)
    with pytest.raises(ImportError, match=r"pip install 'cogview2\[web\]'"):
        require_gradio()


def test_serve_binds_loopback_only():
    with pytest.raises(ValueError, match="not a loopback address"):
        server.serve("0.0.0.0", 8000, tiny=True)
    with pytest.raises(ValueError, match="port"):
        server.serve("127.0.0.1", 0, tiny=True)


def test_resolve_weights(monkeypatch, tmp_path):
    from cogview2 import loading

    monkeypatch.delenv(loading.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(loading, "DEMO_WEIGHTS", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=r"absent: pass --weights DIR"):
        server.resolve_weights(None)
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        server.resolve_weights(tmp_path / "elsewhere")
    monkeypatch.setenv(loading.WEIGHTS_ENV, str(tmp_path))
    assert server.resolve_weights(None) == tmp_path


def test_serve_command_parses_and_calls_serve(monkeypatch):
    calls = []
    monkeypatch.setattr(server, "serve", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(server, "require_gradio", lambda: None)
    parser = argparse.ArgumentParser(prog="cogview2")
    server.add_serve_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--tiny", "--port", "8123", "--max-images", "3"])
    assert args.func(args) == 0
    ((positional, keywords),) = calls
    assert positional == ("127.0.0.1", 8123, None)
    assert keywords["tiny"] and keywords["config"].max_images == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--host", "0.0.0.0"])


def test_module_entry_reports_missing_weights(monkeypatch, tmp_path, capsys):
    from cogview2.web.__main__ import main

    pytest.importorskip("gradio")
    assert main(["--weights", str(tmp_path / "nothing")]) == 2
    assert "pass --weights DIR" in capsys.readouterr().err


def test_editor_box_from_painted_layer():
    assert editor_box(None) is None
    assert editor_box({"background": None, "layers": [], "composite": None}) is None
    layer = np.zeros((10, 20, 4), dtype=np.uint8)
    layer[2:5, 4:10, 3] = 255
    assert editor_box({"layers": [layer]}) == pytest.approx((0.2, 0.2, 0.5, 0.5))


def test_build_app_and_error_messages(tiny_pipe):
    gr = pytest.importorskip("gradio")
    from cogview2.web.app import _shown, build_app

    demo = build_app(tiny_pipe)
    assert isinstance(demo, gr.Blocks)

    def bad(prompt):
        raise ValueError("Enter a prompt first")

    def broken(prompt):
        raise RuntimeError("out of memory")

    with pytest.raises(gr.Error, match="Enter a prompt first"):
        _shown(bad)("")
    with pytest.raises(gr.Error, match=r"RuntimeError: out of memory.*server log"):
        _shown(broken)("x")
