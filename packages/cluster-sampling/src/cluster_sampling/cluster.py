"""Cluster sampling (CogView2 paper sec. 4.1; reference.md sec. 3.4 and 4.4), vectorised over rows.

Per row, with `z = logits / temperature`:
1. `p = softmax(z)`; cluster masses `P_c = sum_{v: labels[v] = c} p_v` (one `scatter_add_`).
2. Keep the `top_k_clusters` clusters of largest mass; sample one with probability
   `P_c / sum_topK P`.
3. Sample a token of the chosen cluster from `softmax(z / cluster_temperature)` restricted to it.

The original sets the logits outside the chosen cluster to -65504 and takes a full-vocabulary
softmax; those entries get probability exactly 0 in float32, so sampling among the cluster's members
only is the same distribution, at a fraction of the cost. Two uniforms per row (`[..., 0]` for the
cluster, `[..., 1]` for the token) are drawn from the caller's generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ._core import (
    check_row_max,
    check_scores,
    compute_dtype,
    draw_uniforms,
    inverse_cdf,
    row_chunks,
)
from .labels import validate_labels

__all__ = ["ClusterSampler", "cluster_probs"]


def cluster_probs(
    logits: torch.Tensor, labels: torch.Tensor, num_clusters: int, *, temperature: float = 1.0
) -> torch.Tensor:
    """Probability mass of each cluster under `softmax(logits / temperature)`.

    Args:
        logits: `(..., vocab)` float scores with `vocab == len(labels)`.
        labels: `(vocab,)` integer cluster ids in `[0, num_clusters)`.
        num_clusters: number of clusters.
        temperature: divides the logits before the softmax (> 0).

    Returns:
        `(..., num_clusters)` masses (float32, or float64 for float64 logits); rows sum to 1.
    """
    check_scores(logits)
    labels = validate_labels(labels, num_codes=logits.shape[-1], num_clusters=num_clusters)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    flat = logits.reshape(-1, logits.shape[-1]).to(compute_dtype(logits)) / temperature
    probs = flat.softmax(dim=-1)  # (rows, vocab)
    index = labels.to(logits.device).expand_as(probs)
    masses = probs.new_zeros(probs.shape[0], num_clusters).scatter_add_(1, index, probs)
    return masses.reshape(*logits.shape[:-1], num_clusters)


@dataclass(frozen=True)
class _Tables:
    """Device copies of the labels and of the padded member lists of every cluster."""

    labels: torch.Tensor  # (vocab,) int64
    members: torch.Tensor  # (num_clusters, max_size) int64 ids, ascending, padded with 0
    sizes: torch.Tensor  # (num_clusters,) int64


@dataclass(frozen=True, eq=False)
class ClusterSampler:
    """Sample one token per row by cluster sampling: `sampler(logits, generator) -> ids`.

    Args:
        labels: `(vocab,)` integer cluster id of every token (e.g. :func:`load_labels` of the
            official `cluster_label.npy`: 20000 codes, 500 clusters). Kept on the CPU and copied to
            the logits' device on first use (cached per device).
        top_k_clusters: number of most probable clusters kept, in `[1, num_clusters]`; a larger
            value raises ValueError (it is a configuration error, not clamped).
        temperature: first temperature (`T1`), applied before the cluster masses.
        cluster_temperature: second temperature (`T2`), applied on top of `T1` inside the cluster
            (the token is drawn from `softmax(logits / (T1 * T2))` restricted to the cluster).
        num_clusters: number of clusters; defaults to `max(labels) + 1`. Labels must lie in
            `[0, num_clusters)`; clusters without tokens simply have mass 0.

    CogView2 uses `ClusterSampler(labels, 16, 1.15, 1.0)` in stage 1 and
    `ClusterSampler(labels, 100, 1.0, 0.89)` in direct super-resolution. The logits must have
    exactly `len(labels)` columns: slice a larger head (`logits[..., :20000]`) before calling.
    """

    labels: torch.Tensor
    top_k_clusters: int
    temperature: float = 1.0
    cluster_temperature: float = 1.0
    num_clusters: int | None = None
    _per_device: dict[torch.device, _Tables] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        labels = validate_labels(self.labels, num_clusters=self.num_clusters)
        num_clusters = self.num_clusters if self.num_clusters is not None else int(labels.max()) + 1
        k = self.top_k_clusters
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_clusters:
            raise ValueError(
                f"top_k_clusters must be an int in [1, num_clusters={num_clusters}], got {k!r}"
            )
        for name in ("temperature", "cluster_temperature"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "num_clusters", num_clusters)

    @property
    def vocab_size(self) -> int:
        """Number of tokens covered by the labels (the required last dimension of the logits)."""
        return self.labels.numel()

    def _tables(self, device: torch.device) -> _Tables:
        tables = self._per_device.get(device)
        if tables is None:
            assert self.num_clusters is not None
            sizes = torch.bincount(self.labels, minlength=self.num_clusters)  # (C,)
            order = torch.argsort(self.labels, stable=True)  # ids grouped by cluster, ascending
            starts = torch.cumsum(sizes, 0) - sizes  # (C,)
            width = max(1, int(sizes.max()))
            slot = torch.arange(width)  # (S,)
            valid = slot < sizes.unsqueeze(1)  # (C, S)
            position = (starts.unsqueeze(1) + slot).clamp(max=self.labels.numel() - 1)
            members = torch.where(valid, order[position], 0)  # (C, S)
            tables = _Tables(self.labels.to(device), members.to(device), sizes.to(device))
            self._per_device[device] = tables
        return tables

    def __call__(
        self,
        logits: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        uniforms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample `(...)` int64 ids from `(..., vocab)` logits, one per row, all rows at once.

        Args:
            logits: `(..., vocab)` float scores, `vocab == len(labels)`; any float dtype (computed
                in float32, or float64 for float64 input). -inf entries are never sampled.
            generator: source of randomness (None: the global generator of the logits' device).
                Uniforms are drawn on the generator's device, so a CPU generator gives the same
                tokens for CPU and accelerator logits.
            uniforms: optional `(..., 2)` uniforms in [0, 1) used instead of drawing: `[..., 0]`
                picks the cluster and `[..., 1]` the token.

        Returns:
            `(...)` int64 token ids on the logits' device.

        Raises:
            ValueError: wrong vocabulary size; a row with NaN or +inf, or entirely -inf.
        """
        check_scores(logits)
        vocab = logits.shape[-1]
        if vocab != self.vocab_size:
            raise ValueError(
                f"logits have {vocab} columns but the labels cover {self.vocab_size} tokens; "
                f"pass logits[..., :{self.vocab_size}] (or labels for the whole vocabulary)"
            )
        leading = tuple(logits.shape[:-1])
        if uniforms is None:
            u = draw_uniforms((*leading, 2), generator, logits.device)
        else:
            if tuple(uniforms.shape) != (*leading, 2):
                raise ValueError(
                    f"uniforms must have shape {(*leading, 2)}, got {tuple(uniforms.shape)}"
                )
            if not bool(((uniforms >= 0) & (uniforms < 1)).all()):
                raise ValueError("uniforms must lie in [0, 1)")
            u = uniforms.to(device=logits.device, dtype=torch.float64)
        u = u.reshape(-1, 2)
        tables = self._tables(logits.device)
        flat = logits.reshape(-1, vocab)  # (rows, vocab)
        out = torch.empty(flat.shape[0], dtype=torch.int64, device=logits.device)
        for rows in row_chunks(flat.shape[0], vocab):
            out[rows] = self._sample_rows(flat[rows], u[rows], tables, rows.start)
        return out.reshape(leading)

    def _sample_rows(
        self, logits: torch.Tensor, u: torch.Tensor, tables: _Tables, first_row: int
    ) -> torch.Tensor:
        """Cluster-sample `(n, vocab)` logits with `(n, 2)` uniforms; returns `(n,)` ids."""
        assert self.num_clusters is not None
        z = logits.to(compute_dtype(logits))  # (n, vocab)
        if self.temperature != 1.0:
            z = z / self.temperature
        probs = torch.softmax(z, dim=-1)  # (n, vocab)
        index = tables.labels.expand_as(probs)
        masses = probs.new_zeros(probs.shape[0], self.num_clusters).scatter_add_(1, index, probs)
        del probs
        # NaN / +inf / all -inf rows make their softmax NaN, which reaches the masses: check there
        # (n x num_clusters) instead of scanning the logits again.
        bad_rows = (~torch.isfinite(masses).all(dim=-1)).nonzero()
        if bad_rows.numel():
            row = int(bad_rows[0, 0])
            check_row_max(z[row : row + 1].amax(dim=-1), first_row + row)
            raise AssertionError("non-finite cluster masses from finite logits")  # unreachable
        top_mass, top_cluster = masses.topk(self.top_k_clusters, dim=-1)  # (n, K)
        pick = inverse_cdf(top_mass, u[:, 0])  # (n,) position among the top K
        chosen = top_cluster.gather(1, pick.unsqueeze(1)).squeeze(1)  # (n,)
        members = tables.members[chosen]  # (n, S)
        valid = torch.arange(members.shape[1], device=z.device) < tables.sizes[chosen].unsqueeze(1)
        inner = z.gather(1, members) / self.cluster_temperature  # (n, S)
        inner = inner.masked_fill(~valid, float("-inf"))
        weights = (inner - inner.amax(dim=-1, keepdim=True)).exp_()  # unnormalised softmax
        token = inverse_cdf(weights, u[:, 1])  # (n,)
        return members.gather(1, token.unsqueeze(1)).squeeze(1)
