"""Fetching npm packages (offline: fake npm, cached tarballs) and the `cogview2 data` CLI."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cogview2.cli import build_parser, main
from cogview2.data import NpmNotFoundError, NpmPackage, fetch_npm_packages, packages_for
from cogview2.data.npm import safe_extract_tarball

FIXTURES = Path(__file__).parent / "fixtures" / "emoji_npm"
FIXTURE_DIRS = {  # npm package name -> fixture directory shaped like its `package/` folder
    "cldr-annotations-full": "cldr-annotations-full",
    "cldr-annotations-derived-full": "cldr-annotations-derived-full",
    "emojibase-data": "emojibase-data",
    "@twemoji/svg": "twemoji-svg",
    "openmoji": "openmoji",
}
PKG = NpmPackage("openmoji", "17.0.0", "CC-BY-SA-4.0", "OpenMoji", "https://openmoji.org")


def _tarball(path: Path, source: Path) -> Path:
    """An npm-style tarball of ``source`` under ``package/``."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname="package")
    return path


@pytest.fixture
def no_npm(monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_missing_npm_says_what_to_install(no_npm, tmp_path):
    with pytest.raises(NpmNotFoundError) as info:
        fetch_npm_packages([PKG], tmp_path / "cache")
    message = str(info.value)
    assert "npm" in message and "Node.js" in message and "apt-get install npm" in message
    assert "openmoji@17.0.0" in message and "openmoji-17.0.0.tgz" in message


def test_cached_tarballs_need_no_npm(no_npm, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    _tarball(cache / "openmoji-17.0.0.tgz", FIXTURES / "openmoji")
    roots = fetch_npm_packages([PKG], cache)
    assert (roots["openmoji"] / "color" / "svg" / "1F34E.svg").is_file()
    assert roots == fetch_npm_packages([PKG], cache)  # second call reuses the extraction


def test_fetch_calls_npm_pack(monkeypatch, tmp_path):
    """A fake `npm` on PATH records its arguments and writes a tarball like `npm pack`."""
    bin_dir, cache = tmp_path / "bin", tmp_path / "cache"
    bin_dir.mkdir()
    source = _tarball(tmp_path / "src.tgz", FIXTURES / "openmoji")
    fake = bin_dir / "npm"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > "{tmp_path}/args"\n'
        f'cp "{source}" "$5/openmoji-17.0.0.tgz"\n'
        'echo \'[{"filename": "openmoji-17.0.0.tgz"}]\'\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # fake npm first
    roots = fetch_npm_packages([PKG], cache)
    assert (tmp_path / "args").read_text().split()[:2] == ["pack", "openmoji@17.0.0"]
    assert (cache / "openmoji-17.0.0.tgz").is_file()
    assert (roots["openmoji"] / "package.json").is_file()


def test_safe_extract_refuses_escapes_and_skips_links(tmp_path):
    evil = tmp_path / "evil.tgz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("package/../../outside.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(ValueError, match="would escape"):
        safe_extract_tarball(evil, tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists()

    linked = tmp_path / "linked.tgz"
    with tarfile.open(linked, "w:gz") as tar:
        link = tarfile.TarInfo("package/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        info = tarfile.TarInfo("package/ok.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    safe_extract_tarball(linked, tmp_path / "dest2")
    assert (tmp_path / "dest2" / "package" / "ok.txt").read_bytes() == b"ok"
    assert not os.path.lexists(tmp_path / "dest2" / "package" / "passwd")


@pytest.fixture
def filled_cache(tmp_path):
    """A cache holding tarballs of the fixture packages, so the CLI runs offline."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for package in packages_for(["twemoji", "openmoji"]):
        _tarball(cache / f"{package.dirname}.tgz", FIXTURES / FIXTURE_DIRS[package.name])
    return cache


def test_cli_builds_and_exports(no_npm, filled_cache, tmp_path, capsys):
    out = tmp_path / "emoji"
    argv = ["data", "emoji", "--out", str(out), "--cache", str(filled_cache), "--quiet"]
    argv += ["--styles", "twemoji", "openmoji", "--sizes", "16", "--heldout-fraction", "0.5"]
    assert main([*argv, "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "twemoji:" in printed and "'unrenderable': 1" in printed and "wrote 3 train" in printed
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["sizes"] == [16] and manifest["seed"] == 3

    assert main([*argv, "--seed", "3"]) == 2  # refuses to overwrite silently
    assert "already holds a data set" in capsys.readouterr().err

    export = tmp_path / "pngs"
    assert main(["data", "export", "--data", str(out), "--out", str(export), "--size", "16"]) == 0
    assert len(list((export / "images").glob("*.png"))) == 3


def test_cli_missing_npm_is_one_clear_line(no_npm, tmp_path, capsys):
    code = main(["data", "emoji", "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("cogview2 data: error:") and "apt-get install npm" in err


def test_cli_parser_lists_commands():
    parser = build_parser()
    args = parser.parse_args(["data", "emoji", "--out", "x", "--sizes", "160", "--limit", "5"])
    assert (args.sizes, args.limit, args.styles[0]) == ([160], 5, "twemoji")
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "emoji", "--out", "x", "--styles", "pixel"])
