"""Group the code vectors of a VQ codebook into clusters with scikit-learn K-means (paper sec. 4.1)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

KMeansMethod = Literal["kmeans", "minibatch"]
_METHODS = ("kmeans", "minibatch")


def cluster_codebook(
    codebook: torch.Tensor | np.ndarray,
    num_clusters: int = 500,
    *,
    seed: int,
    method: KMeansMethod = "kmeans",
    max_iter: int = 300,
    batch_size: int = 4096,
) -> torch.Tensor:
    """Cluster codebook vectors; the result is the `labels` input of :class:`ClusterSampler`.

    `method="kmeans"` is scikit-learn `KMeans(n_init=1, random_state=seed)` (k-means++ init, Lloyd);
    on the 20000 x 256 icetk codebook it takes a few seconds on a CPU. `method="minibatch"` is
    `MiniBatchKMeans(n_init=1, random_state=seed, batch_size=batch_size)`, for larger codebooks.
    Both are deterministic for a given seed on a given machine.

    Args:
        codebook: `(num_codes, dim)` float code vectors (any float dtype and device; copied to CPU).
        num_clusters: number of clusters, in `[1, num_codes]`. CogView2 uses 500.
        seed: random state of the initialisation (keyword-only, required for reproducibility).
        method: `"kmeans"` or `"minibatch"`.
        max_iter: maximum number of iterations (Lloyd) or of passes over the data (mini-batch).
        batch_size: mini-batch size, used only by `"minibatch"`.

    Returns:
        `(num_codes,)` int64 CPU tensor of cluster ids in `[0, num_clusters)`.

    Raises:
        ValueError: bad shape, non-finite values, or an argument out of range.
    """
    if isinstance(codebook, torch.Tensor):
        if not codebook.dtype.is_floating_point:
            raise ValueError(f"codebook must be a float tensor, got {codebook.dtype}")
        array = codebook.detach().to(device="cpu", dtype=torch.float32).numpy()
    elif isinstance(codebook, np.ndarray):
        if codebook.dtype.kind != "f":
            raise ValueError(f"codebook must be a float array, got {codebook.dtype}")
        array = codebook.astype(np.float32, copy=False)
    else:
        raise ValueError(
            f"codebook must be a torch.Tensor or numpy array, got {type(codebook).__name__}"
        )
    if array.ndim != 2:
        raise ValueError(f"codebook must be 2-D (num_codes, dim), got shape {array.shape}")
    num_codes = array.shape[0]
    if not 1 <= num_clusters <= num_codes:
        raise ValueError(f"num_clusters must be in [1, num_codes={num_codes}], got {num_clusters}")
    if not np.isfinite(array).all():
        raise ValueError("codebook contains NaN or infinite values")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if max_iter < 1 or batch_size < 1:
        raise ValueError(f"max_iter and batch_size must be >= 1, got {max_iter} and {batch_size}")

    from sklearn.cluster import KMeans, MiniBatchKMeans  # imported here: ~1.5 s, only needed here

    if method == "kmeans":
        model = KMeans(n_clusters=num_clusters, n_init=1, max_iter=max_iter, random_state=seed)
    else:
        model = MiniBatchKMeans(
            n_clusters=num_clusters,
            n_init=1,
            max_iter=max_iter,
            batch_size=batch_size,
            random_state=seed,
        )
    labels = model.fit_predict(array)
    return torch.from_numpy(labels.astype(np.int64))
