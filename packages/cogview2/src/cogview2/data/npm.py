"""Fetch pinned npm packages with ``npm pack`` into a cache and extract them safely.

Fetching is separate from building: :func:`fetch_npm_packages` returns the extracted
package roots, and :func:`cogview2.data.build_emoji_dataset` takes such roots, so the builder
runs offline on any directories laid out like the packages (the tests ship tiny ones).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .sources import NpmPackage

__all__ = ["NpmNotFoundError", "default_cache_dir", "fetch_npm_packages", "safe_extract_tarball"]

_NPM_HINT = (
    "the `npm` executable (Node.js) was not found on PATH, and it is needed to download "
    "{missing}. Install Node.js, which provides npm (e.g. `apt-get install npm`, "
    "`brew install node`, or https://nodejs.org), or put the tarballs ({files}) into the "
    "cache directory {cache}."
)


class NpmNotFoundError(RuntimeError):
    """``npm`` is needed to fetch a package that is not in the cache, and is not installed."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cogview2/npm`` (default ``~/.cache/cogview2/npm``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cogview2" / "npm"


def safe_extract_tarball(tarball: Path, dest: Path) -> None:
    """Extract the regular files and directories of ``tarball`` into ``dest``.

    Links, devices and any member whose path is absolute or leaves ``dest`` (``..``) are
    refused, so a hostile archive cannot write outside ``dest``.

    Raises:
        ValueError: a member's path is absolute or escapes ``dest``.
    """
    dest = Path(dest).resolve()
    with tarfile.open(tarball, "r:*") as tar:
        for member in tar:
            target = (dest / member.name).resolve()
            if os.path.isabs(member.name) or not target.is_relative_to(dest):
                raise ValueError(f"{tarball}: member {member.name!r} would escape {dest}")
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # regular files always have data
                with source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
            # symlinks, hard links, devices and fifos are skipped on purpose


def _npm_pack(package: NpmPackage, npm: str, cache_dir: Path) -> Path:
    """Download ``package`` with ``npm pack`` into ``cache_dir``; returns the tarball."""
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        result = subprocess.run(
            [npm, "pack", package.spec, "--json", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"`npm pack {package.spec}` failed:\n{result.stderr.strip()}")
        filename = json.loads(result.stdout)[0]["filename"]
        tarball = cache_dir / f"{package.dirname}.tgz"
        os.replace(Path(tmp) / Path(filename).name, tarball)
    return tarball


def fetch_npm_packages(
    packages: Sequence[NpmPackage],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    npm: str = "npm",
) -> dict[str, Path]:
    """Make each package available as an extracted directory, downloading what is missing.

    Tarballs are kept as ``<cache_dir>/<dirname>.tgz`` and extracted (once, atomically) to
    ``<cache_dir>/extracted/<dirname>/``. ``npm`` is only needed for tarballs not yet cached.

    Args:
        packages: pinned packages to fetch.
        cache_dir: cache directory; default :func:`default_cache_dir`.
        npm: the npm executable to call.

    Returns:
        npm package name -> the extracted package root (the tarball's ``package/`` folder).

    Raises:
        NpmNotFoundError: a tarball must be downloaded and ``npm`` is not on PATH.
        RuntimeError: ``npm pack`` failed.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not (cache / f"{p.dirname}.tgz").is_file()]
    npm_path = shutil.which(npm)
    if missing and npm_path is None:
        raise NpmNotFoundError(
            _NPM_HINT.format(
                missing=", ".join(p.spec for p in missing),
                files=", ".join(f"{p.dirname}.tgz" for p in missing),
                cache=cache,
            )
        )
    roots: dict[str, Path] = {}
    for package in packages:
        tarball = cache / f"{package.dirname}.tgz"
        if not tarball.is_file():
            assert npm_path is not None
            tarball = _npm_pack(package, npm_path, cache)
        extracted = cache / "extracted" / package.dirname
        if not extracted.is_dir():
            extracted.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=extracted.parent) as tmp:
                safe_extract_tarball(tarball, Path(tmp) / "x")
                os.replace(Path(tmp) / "x", extracted)
        roots[package.name] = extracted / "package"
    return roots
