"""Straightforward per-row references of the samplers: the specification, not the fast path.

They follow the released CogView2 procedures literally (reference.md sec. 3.4, 4.4, 5.4): a Python
loop over rows, full-vocabulary masking to -65504 (clusters) or -inf (top-k) and full-vocabulary
softmaxes. The only change is the random source: where the original calls `torch.multinomial`, these
take explicit uniforms and invert the CDF, so the vectorised samplers can be checked against them
draw for draw. Use them in tests and benchmarks only; they are slow.
"""

from __future__ import annotations

import torch

__all__ = ["cluster_sample_reference", "top_k_sample_reference"]

_MASK_VALUE = -65504.0  # the original's fill for logits outside the chosen cluster


def _categorical(weights: torch.Tensor, u: float) -> int:
    """Smallest `i` with `cdf[i] > u * total`, never an entry of weight 0 (one row, float64)."""
    cdf = weights.to(torch.float64).cumsum(0)
    total = cdf[-1]
    index = int((cdf <= u * total).sum())
    return min(index, int((cdf < total).sum()))


def cluster_sample_reference(
    logits: torch.Tensor,
    labels: torch.Tensor,
    top_k_clusters: int,
    temperature: float,
    cluster_temperature: float,
    uniforms: torch.Tensor,
    num_clusters: int | None = None,
) -> torch.Tensor:
    """Cluster sampling row by row, as the released stage-1 strategy does.

    Args:
        logits: `(rows, vocab)` float scores.
        labels: `(vocab,)` int64 cluster ids.
        top_k_clusters: clusters kept per row.
        temperature: first temperature `T1`.
        cluster_temperature: second temperature `T2`.
        uniforms: `(rows, 2)` uniforms: `[:, 0]` picks the cluster, `[:, 1]` the token.
        num_clusters: defaults to `max(labels) + 1`.

    Returns:
        `(rows,)` int64 ids.
    """
    num_clusters = int(labels.max()) + 1 if num_clusters is None else num_clusters
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    out = torch.empty(logits.shape[0], dtype=torch.int64)
    for row in range(logits.shape[0]):
        z = logits[row].to(dtype) / temperature  # (vocab,)
        probs = torch.softmax(z, dim=0)
        masses = torch.zeros(num_clusters, dtype=dtype).scatter_add_(0, labels, probs)
        top_mass, top_cluster = masses.topk(top_k_clusters)
        cluster = top_cluster[_categorical(top_mass / top_mass.sum(), float(uniforms[row, 0]))]
        z = z.masked_fill(labels != cluster, _MASK_VALUE)
        token_probs = torch.softmax(z / cluster_temperature, dim=0)
        out[row] = _categorical(token_probs, float(uniforms[row, 1]))
    return out


def top_k_sample_reference(
    logits: torch.Tensor, top_k: int, temperature: float, uniforms: torch.Tensor
) -> torch.Tensor:
    """Plain top-k sampling row by row, as the released ITERSR strategy does (ties kept).

    Args:
        logits: `(rows, vocab)` float scores.
        top_k: ids kept per row.
        temperature: divides the logits first.
        uniforms: `(rows,)` uniforms.

    Returns:
        `(rows,)` int64 ids.
    """
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    out = torch.empty(logits.shape[0], dtype=torch.int64)
    for row in range(logits.shape[0]):
        z = logits[row].to(dtype) / temperature
        threshold = torch.topk(z, min(top_k, z.numel()))[0][-1]
        z = z.masked_fill(z < threshold, float("-inf"))
        out[row] = _categorical(torch.softmax(z, dim=0), float(uniforms[row]))
    return out
