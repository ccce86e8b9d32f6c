"""Cluster labels of a VQ codebook: validation, and `.npy` save/load compatible with CogView2.

The official `cluster_label.npy` is an int64 array of shape [20000] with values in [0, 500): entry `v`
is the cluster of image code `v`. These helpers read and write that format with explicit paths; nothing
here runs at import time.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

OFFICIAL_LABELS_SHA256 = "b87880fdbe89670f12844377b9cf97a9733b1f54e3a9b73cbb9835084c4e02ec"
"""sha256 of the official CogView2 `cluster_label.npy` (20000 codes, 500 clusters)."""

OFFICIAL_NUM_CODES = 20000
"""Number of image codes in the official labels file (the icetk VQ codebook size)."""

OFFICIAL_NUM_CLUSTERS = 500
"""Number of clusters in the official labels file."""


def validate_labels(
    labels: torch.Tensor | np.ndarray,
    *,
    num_codes: int | None = None,
    num_clusters: int | None = None,
) -> torch.Tensor:
    """Check cluster labels and return them as a CPU int64 tensor.

    Args:
        labels: `(num_codes,)` integer cluster id of every code.
        num_codes: if given, the required length.
        num_clusters: if given, every label must lie in `[0, num_clusters)`; otherwise labels must
            only be non-negative.

    Returns:
        `(num_codes,)` int64 CPU tensor, never sharing memory with the input.

    Raises:
        ValueError: wrong type, dtype, rank, length or value range.
    """
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise ValueError(f"labels must have an integer dtype, got numpy {labels.dtype}")
        labels = torch.from_numpy(np.array(labels, dtype=np.int64))  # a copy
    if not isinstance(labels, torch.Tensor):
        raise ValueError(
            f"labels must be a torch.Tensor or numpy array, got {type(labels).__name__}"
        )
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"labels must have an integer dtype (int64 preferred), got {labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(
            f"labels must be 1-D (one cluster id per code), got shape {tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        raise ValueError("labels must not be empty")
    if num_codes is not None and labels.numel() != num_codes:
        raise ValueError(f"labels have length {labels.numel()}, expected num_codes={num_codes}")
    labels = labels.detach().to(device="cpu", dtype=torch.int64, copy=True)
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise ValueError(f"labels must be >= 0, got a minimum of {low}")
    if num_clusters is not None:
        if num_clusters < 1:
            raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
        if high >= num_clusters:
            raise ValueError(f"labels must lie in [0, {num_clusters}), got a maximum of {high}")
    return labels


def save_labels(path: str | os.PathLike[str], labels: torch.Tensor | np.ndarray) -> None:
    """Write labels as an int64 `.npy` file, atomically (temp file in the same folder + os.replace).

    The written file has the layout of the official `cluster_label.npy`: a 1-D little-endian int64
    array, no pickled objects. The path is used exactly as given (no `.npy` suffix is appended).

    Args:
        path: destination file.
        labels: `(num_codes,)` integer labels; validated with :func:`validate_labels`.
    """
    array = validate_labels(labels).numpy().astype("<i8", copy=False)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp creates owner-only files
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_labels(
    path: str | os.PathLike[str],
    *,
    num_codes: int | None = None,
    num_clusters: int | None = None,
    expected_sha256: str | None = None,
) -> torch.Tensor:
    """Read and validate a labels `.npy` file (e.g. the official `cluster_label.npy`).

    The file is read with `np.load(..., allow_pickle=False)`, so it never executes pickled code.

    Args:
        path: the `.npy` file.
        num_codes: if given, the required number of labels (20000 for the official file).
        num_clusters: if given, labels must lie in `[0, num_clusters)` (500 for the official file).
        expected_sha256: if given, the file's sha256 hex digest must match (see
            :data:`OFFICIAL_LABELS_SHA256`).

    Returns:
        `(num_codes,)` int64 CPU tensor.

    Raises:
        ValueError: the digest, dtype, shape or value range is wrong, or the file is not a plain array.
    """
    path = Path(path)
    data = path.read_bytes()
    if expected_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha256.lower():
            raise ValueError(
                f"{path}: sha256 {digest} does not match the expected {expected_sha256}"
            )
    try:
        with path.open("rb") as handle:
            array = np.load(handle, allow_pickle=False)
    except ValueError as err:  # object arrays need pickle; refuse them
        raise ValueError(f"{path}: not a plain integer .npy array ({err})") from err
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: expected a single .npy array, got {type(array).__name__}")
    try:
        return validate_labels(array, num_codes=num_codes, num_clusters=num_clusters)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
