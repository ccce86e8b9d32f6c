"""cluster_codebook: recovers well-separated groups, deterministic for a seed, validates inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from cluster_sampling import ClusterSampler, cluster_codebook


def blobs(
    num_groups: int = 6, per_group: int = 30, dim: int = 8, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_groups, dim, generator=gen) * 10
    truth = torch.arange(num_groups).repeat_interleave(per_group)
    points = centres[truth] + 0.1 * torch.randn(len(truth), dim, generator=gen)
    perm = torch.randperm(len(truth), generator=gen)
    return points[perm], truth[perm].numpy()


@pytest.mark.parametrize("method", ["kmeans", "minibatch"])
def test_recovers_separated_groups_deterministically(method: str) -> None:
    codebook, truth = blobs()
    labels = cluster_codebook(codebook, 6, seed=0, method=method, batch_size=64, max_iter=20)
    assert labels.dtype == torch.int64 and labels.shape == (180,)
    assert labels.min() >= 0 and labels.max() < 6
    assert adjusted_rand_score(truth, labels.numpy()) == pytest.approx(1.0)
    again = cluster_codebook(
        codebook.double().numpy(), 6, seed=0, method=method, batch_size=64, max_iter=20
    )
    assert torch.equal(labels, again)
    ClusterSampler(labels, 3)(torch.randn(2, 180))  # the labels plug into the sampler


def test_bad_inputs_raise() -> None:
    codebook, _ = blobs()
    with pytest.raises(ValueError, match="num_clusters must be in"):
        cluster_codebook(codebook, 181, seed=0)
    with pytest.raises(ValueError, match="2-D"):
        cluster_codebook(codebook[0], 2, seed=0)
    with pytest.raises(ValueError, match="float"):
        cluster_codebook(torch.ones(4, 2, dtype=torch.int64), 2, seed=0)
    bad = codebook.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        cluster_codebook(bad, 2, seed=0)
    with pytest.raises(ValueError, match="method"):
        cluster_codebook(codebook, 2, seed=0, method="faiss")  # type: ignore[arg-type]
