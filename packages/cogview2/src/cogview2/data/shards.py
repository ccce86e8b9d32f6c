"""The shard format: uncompressed tar files of PNGs, written atomically and reproducibly.

A data set directory holds ``manifest.json``, one ``<split>.jsonl`` per split (one record per
sample, with the shard file and the byte ``[offset, length]`` of each image inside it) and
the shards ``<split>-00000.tar``, ... Each sample ``<style>/<code>`` stores one member per
size, ``<style>/<code>.<size>.png``. Tar keeps shards readable by standard tools
(``tar tf``, WebDataset); the recorded offsets give O(1) random access without parsing tar.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = [
    "FORMAT_VERSION",
    "ShardInfo",
    "ShardWriter",
    "read_member",
    "sha256_file",
]

FORMAT_VERSION = 1
"""Bumped whenever the layout of manifest, records or shards changes incompatibly."""
FILE_MODE = 0o644
"""Permissions of written files (``mkstemp`` would leave them owner-only)."""


@dataclass
class ShardInfo:
    """One finished shard: file name, sample count, size in bytes and sha256 hex digest."""

    file: str
    samples: int
    bytes: int
    sha256: str


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ShardWriter:
    """Write samples into ``<out>/<prefix>-NNNNN.tar`` shards of at most ``samples_per_shard``.

    Each shard is written to a temporary file and renamed into place when full or on
    :meth:`close`, so a shard on disk is always complete. Members have fixed mode, owner and
    mtime, so the same inputs give byte-identical shards.

    Example:
        with ShardWriter(out, "train", 1000) as writer:
            shard, spans = writer.add("twemoji/1F34E", {"160.png": png160})
    """

    out: Path
    prefix: str
    samples_per_shard: int
    shards: list[ShardInfo] = field(default_factory=list)
    _tar: tarfile.TarFile | None = field(default=None, repr=False)
    _tmp: str | None = field(default=None, repr=False)
    _count: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.samples_per_shard < 1:
            raise ValueError(f"samples_per_shard must be >= 1, got {self.samples_per_shard}")
        self.out = Path(self.out)

    @property
    def _name(self) -> str:
        return f"{self.prefix}-{len(self.shards):05d}.tar"

    def add(self, key: str, files: dict[str, bytes]) -> tuple[str, dict[str, list[int]]]:
        """Append one sample; ``files`` maps a suffix (e.g. ``"160.png"``) to its bytes.

        Returns:
            ``(shard file name, {suffix: [byte offset, length]})``.
        """
        if self._tar is None:
            fd, self._tmp = tempfile.mkstemp(dir=self.out, prefix=".tmp-", suffix=".tar")
            os.close(fd)
            self._tar = tarfile.open(  # noqa: SIM115 - closed in _finish or __exit__
                self._tmp, "w", format=tarfile.USTAR_FORMAT, encoding="utf-8"
            )
        spans: dict[str, list[int]] = {}
        for suffix, data in files.items():
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            header = len(info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict"))
            data_offset = self._tar.offset + header
            self._tar.addfile(info, io.BytesIO(data))
            spans[suffix] = [data_offset, len(data)]
        name = self._name
        self._count += 1
        if self._count == self.samples_per_shard:
            self._finish()
        return name, spans

    def _finish(self) -> None:
        if self._tar is None or self._tmp is None:
            return
        self._tar.close()
        final = self.out / self._name
        os.chmod(self._tmp, FILE_MODE)
        os.replace(self._tmp, final)
        self.shards.append(
            ShardInfo(final.name, self._count, final.stat().st_size, sha256_file(final))
        )
        self._tar, self._tmp, self._count = None, None, 0

    def close(self) -> list[ShardInfo]:
        """Finish the last shard; returns every shard written."""
        self._finish()
        return self.shards

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._tar is not None and self._tmp is not None:
            self._tar.close()
            os.unlink(self._tmp)


def read_member(shard: str | Path, offset: int, length: int) -> bytes:
    """Read ``length`` bytes at ``offset`` of a shard (one stored image).

    Raises:
        ValueError: the shard is shorter than ``offset + length`` (truncated data set).
    """
    with open(shard, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    if len(data) != length:
        raise ValueError(
            f"{shard}: wanted {length} bytes at {offset}, got {len(data)} (truncated?)"
        )
    return data
