"""Cluster sampling over VQ codebooks (CogView2 sec. 4.1) and the usual logits warpers.

`ClusterSampler` samples one token per row for logits of any leading shape in one vectorised pass;
`TopKSampler`, `TokenSampler` and `sample` cover plain sampling; `Temperature`, `TopK`, `TopP`,
`MinP`, `IdMask` and `WarperList` are logits warpers usable as `(input_ids, scores) -> scores`
processors. `cluster_codebook`, `save_labels` and `load_labels` make and store the cluster labels.
Every sampler takes an explicit `torch.Generator`. Nothing happens at import time.
"""

from importlib.metadata import version as _version

from .cluster import ClusterSampler, cluster_probs
from .kmeans import cluster_codebook
from .labels import (
    OFFICIAL_LABELS_SHA256,
    OFFICIAL_NUM_CLUSTERS,
    OFFICIAL_NUM_CODES,
    load_labels,
    save_labels,
    validate_labels,
)
from .sampling import TokenSampler, TopKSampler, sample, sample_probs
from .warpers import IdMask, LogitsWarper, MinP, Temperature, TopK, TopP, WarperList

__version__ = _version("cluster-sampling")

__all__ = [
    "OFFICIAL_LABELS_SHA256",
    "OFFICIAL_NUM_CLUSTERS",
    "OFFICIAL_NUM_CODES",
    "ClusterSampler",
    "IdMask",
    "LogitsWarper",
    "MinP",
    "Temperature",
    "TokenSampler",
    "TopK",
    "TopKSampler",
    "TopP",
    "WarperList",
    "__version__",
    "cluster_codebook",
    "cluster_probs",
    "load_labels",
    "sample",
    "sample_probs",
    "save_labels",
    "validate_labels",
]
