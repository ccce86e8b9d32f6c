"""Training images: a folder of PNGs and/or a list file, resized and centre-cropped on the fly."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from icetk.preprocess import resize_center_crop, to_float_tensor

#: File suffixes collected from folders.
IMAGE_SUFFIXES = (".png",)


def collect_image_paths(sources: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders (every ``*.png`` below them, sorted) and list files into image paths.

    A list file is a text file with one image path per line; relative paths are relative to the
    list file's folder; blank lines and lines starting with ``#`` are skipped. Any other file
    is taken as an image itself.
    """
    paths: list[Path] = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file() and p.suffix.lower() in (".txt", ".lst", ".list"):
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line)
                    paths.append(q if q.is_absolute() else p.parent / q)
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"image source not found: {p.resolve()}")
    if not paths:
        raise ValueError(f"no images found in {[str(s) for s in sources]}")
    return paths


class ImageFiles(torch.utils.data.Dataset):
    """Images read lazily from disk as float32 (3, size, size) in [0, 1].

    Args:
        paths: Image files (see ``collect_image_paths``).
        image_size: Shorter side resized to this, then centre-cropped square.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], image_size: int) -> None:
        self.paths = [Path(p) for p in paths]
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return resize_center_crop(to_float_tensor(self.paths[i]), self.image_size)


class TensorImages(torch.utils.data.Dataset):
    """In-memory images: float (N, 3, S, S) in [0, 1] (e.g. procedurally generated)."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(
                f"images must be float (N, 3, S, S), got {images.dtype} {tuple(images.shape)}"
            )
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def shapes_images(n: int, size: int, *, seed: int = 0) -> torch.Tensor:
    """Procedural real-looking test images: a colour gradient, a disc and a striped square.

    Deterministic for a given ``seed``; for tests, examples and benchmarks (no files needed).

    Returns:
        float32 (n, 3, size, size) in [0, 1].
    """
    g = torch.Generator().manual_seed(seed)
    axis = torch.linspace(0, 1, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")  # (size, size) each
    out = []
    for _ in range(n):
        c0, c1, c2, c3 = torch.rand(4, 3, 1, 1, generator=g)  # colours
        img = c0 * (1 - yy) + c1 * yy  # (3, size, size) vertical gradient
        cx, cy = (0.25 + 0.5 * torch.rand(2, generator=g)).tolist()
        r = 0.15 + 0.15 * torch.rand(1, generator=g).item()
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
        img = torch.where(disc, c2.expand_as(img), img)
        stripes = (xx * size).long() % 4 < 2
        square = (xx > 0.1) & (xx < 0.45) & (yy > 0.55) & (yy < 0.9) & stripes
        out.append(torch.where(square, c3.expand_as(img), img))
    return torch.stack(out).clamp(0, 1)
