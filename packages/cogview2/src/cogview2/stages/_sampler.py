"""The cluster sampler of a stage, with its top-k capped at the codebook's number of clusters."""

from __future__ import annotations

from torch import Tensor

from cluster_sampling import ClusterSampler


def capped_cluster_sampler(
    labels: Tensor, top_k: int, temp_all: float, temp_cluster: float
) -> ClusterSampler:
    """``ClusterSampler(labels, top_k, temp_all, temp_cluster)`` with ``top_k`` capped at the
    number of clusters (only matters for small test codebooks)."""
    num_clusters = int(labels.max()) + 1
    return ClusterSampler(labels, min(top_k, num_clusters), temp_all, temp_cluster)
