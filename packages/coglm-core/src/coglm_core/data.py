"""Pretraining data: a flat int32 token file with a fixed number of tokens per sample (§8.1)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ._atomic import atomic_path


class TokenDataset:
    """Samples of ``sequence_length`` int32 tokens from a flat binary file (memory-mapped).

    Args:
        path: file of ``N * sequence_length`` little-endian int32 values.
        sequence_length: tokens per sample (512 for CogLM).
    """

    def __init__(self, path: str | os.PathLike[str], sequence_length: int) -> None:
        self.path = Path(path)
        self.sequence_length = sequence_length
        size = self.path.stat().st_size
        if size % (4 * sequence_length):
            raise ValueError(
                f"{self.path}: {size} bytes is not a whole number of {sequence_length}-token "
                "int32 samples"
            )
        self._data = np.memmap(self.path, dtype="<i4", mode="r").reshape(-1, sequence_length)

    def __len__(self) -> int:
        return self._data.shape[0]

    def __getitem__(self, index: int) -> Tensor:
        """(sequence_length,) long."""
        return torch.from_numpy(np.asarray(self._data[index], dtype=np.int64))


def write_token_file(path: str | os.PathLike[str], samples: Tensor) -> Path:
    """Write (N, L) integer tokens as a flat int32 file, atomically."""
    out = Path(path)
    with atomic_path(out) as tmp:
        tmp.write_bytes(samples.to(torch.int32).numpy().astype("<i4").tobytes())
    return out
