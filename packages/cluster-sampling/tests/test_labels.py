"""Labels .npy save/load: official layout, validation on load, atomic writes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from cluster_sampling import (
    OFFICIAL_NUM_CLUSTERS,
    OFFICIAL_NUM_CODES,
    load_labels,
    save_labels,
    validate_labels,
)


def official_like() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, OFFICIAL_NUM_CLUSTERS, (OFFICIAL_NUM_CODES,), generator=gen)


def test_round_trip_has_the_official_layout(tmp_path: Path) -> None:
    labels = official_like()
    path = tmp_path / "cluster_label.npy"
    save_labels(path, labels)
    raw = np.load(path, allow_pickle=False)
    assert raw.dtype == np.dtype("<i8") and raw.shape == (OFFICIAL_NUM_CODES,)
    loaded = load_labels(path, num_codes=OFFICIAL_NUM_CODES, num_clusters=OFFICIAL_NUM_CLUSTERS)
    assert loaded.dtype == torch.int64 and torch.equal(loaded, labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cluster_label.npy"]  # no temp files left


def test_loads_a_file_written_by_plain_numpy(tmp_path: Path) -> None:
    path = tmp_path / "labels.npy"
    np.save(path, official_like().numpy())  # as the official file was made
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = load_labels(path, expected_sha256=digest.upper())
    assert loaded.shape == (OFFICIAL_NUM_CODES,)
    with pytest.raises(ValueError, match="sha256"):
        load_labels(path, expected_sha256="0" * 64)


def test_save_accepts_numpy_and_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "labels"  # no suffix is appended
    save_labels(path, np.array([0, 1, 1], dtype=np.int32))
    save_labels(path, np.array([2, 0], dtype=np.int64))
    assert load_labels(path).tolist() == [2, 0]
    with pytest.raises(ValueError, match=">= 0"):
        save_labels(path, np.array([-1, 0]))
    assert load_labels(path).tolist() == [2, 0]  # a failed save leaves the old file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"]


@pytest.mark.parametrize(
    ("array", "kwargs", "message"),
    [
        (np.zeros(5, dtype=np.float32), {}, "integer dtype"),
        (np.zeros((2, 3), dtype=np.int64), {}, "1-D"),
        (np.arange(10), {"num_codes": 20000}, "expected num_codes=20000"),
        (np.array([0, 500, 3]), {"num_clusters": 500}, r"\[0, 500\)"),
        (np.array([0, -2]), {}, ">= 0"),
    ],
)
def test_load_validates(
    tmp_path: Path, array: np.ndarray, kwargs: dict[str, int], message: str
) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=f"bad.npy: .*{message}"):
        load_labels(path, **kwargs)


def test_load_refuses_pickled_objects_and_npz(tmp_path: Path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([0, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a plain integer"):
        load_labels(path)
    npz = tmp_path / "labels.npz"
    np.savez(npz, labels=np.arange(4))
    with pytest.raises(ValueError, match=r"single \.npy array"):
        load_labels(npz)


def test_validate_rejects_non_arrays() -> None:
    with pytest.raises(ValueError, match=r"torch\.Tensor or numpy"):
        validate_labels([0, 1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer dtype"):
        validate_labels(torch.tensor([True, False]))
