"""ClusterSampler: distribution, determinism, parity with the per-row reference, edge cases."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

import cluster_sampling._core as core
from cluster_sampling import ClusterSampler, cluster_probs
from cluster_sampling.reference import cluster_sample_reference

# 12 tokens in 4 clusters of uneven sizes; ids of a cluster are not contiguous.
LABELS = torch.tensor([0, 1, 2, 0, 3, 1, 2, 2, 0, 3, 1, 2])
NUM_CLUSTERS = 4


def expected_token_probs(
    logits: torch.Tensor, labels: torch.Tensor, k: int, t1: float, t2: float
) -> torch.Tensor:
    """Exact distribution of one row, in float64, from the definition (reference.md sec. 3.4)."""
    z = logits.double() / t1
    probs = z.softmax(0)
    masses = torch.zeros(int(labels.max()) + 1, dtype=torch.float64).index_add_(0, labels, probs)
    top = masses.topk(k).indices
    result = torch.zeros_like(probs)
    for c in top.tolist():
        inside = labels == c
        inner = torch.where(inside, z / t2, torch.tensor(float("-inf"), dtype=torch.float64))
        result += masses[c] / masses[top].sum() * inner.softmax(0)
    return result


@pytest.mark.parametrize(
    ("k", "t1", "t2"), [(2, 1.15, 1.0), (3, 1.0, 0.89), (4, 0.7, 1.6), (1, 1.0, 1.0)]
)
def test_frequencies_match_the_distribution(k: int, t1: float, t2: float) -> None:
    gen = torch.Generator().manual_seed(1234)
    logits = torch.randn(12, generator=gen) * 1.5
    n = 40_000
    sampler = ClusterSampler(LABELS, k, t1, t2)
    ids = sampler(logits.expand(n, 12), generator=gen)
    counts = torch.bincount(ids, minlength=12).double()
    expected = expected_token_probs(logits, LABELS, k, t1, t2) * n
    support = expected > 0
    assert counts[~support].sum() == 0, "a token outside the top-k clusters was sampled"
    _, p_value = chisquare(counts[support].numpy(), expected[support].numpy())
    assert p_value > 1e-3, (counts, expected)


def test_temperature_two_equal_one_is_the_restricted_softmax() -> None:
    """With T2 = 1, sampling = softmax(logits/T1) restricted to the union of the top-K clusters."""
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(12, generator=gen)
    expected = expected_token_probs(logits, LABELS, 2, 1.3, 1.0)
    p = (logits.double() / 1.3).softmax(0)
    masses = torch.zeros(4, dtype=torch.float64).index_add_(0, LABELS, p)
    keep = torch.isin(LABELS, masses.topk(2).indices)
    restricted = torch.where(keep, p, 0.0)
    torch.testing.assert_close(expected, restricted / restricted.sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(37,), (3, 5), (2, 2, 4)])
def test_vectorised_equals_per_row_reference(
    dtype: torch.dtype, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "CHUNK_ELEMENTS", 3 * 300)  # several chunks, one partial
    gen = torch.Generator().manual_seed(sum(shape))
    labels = torch.randint(0, 20, (300,), generator=gen)
    logits = (torch.randn(*shape, 300, generator=gen) * 3).to(dtype)
    logits[..., 5] = float("-inf")  # masked ids must behave like the original too
    uniforms = torch.rand(*shape, 2, generator=gen, dtype=torch.float64)
    sampler = ClusterSampler(labels, 6, 1.15, 0.89, num_clusters=20)
    fast = sampler(logits, uniforms=uniforms)
    ref = cluster_sample_reference(
        logits.reshape(-1, 300), labels, 6, 1.15, 0.89, uniforms.reshape(-1, 2), 20
    )
    assert fast.shape == shape and fast.dtype == torch.int64
    torch.testing.assert_close(fast.reshape(-1), ref, rtol=0, atol=0)
    assert not bool((fast == 5).any())


def test_same_seed_same_tokens_and_callable_signature() -> None:
    labels = torch.randint(0, 8, (64,), generator=torch.Generator().manual_seed(0))
    logits = torch.randn(16, 64, generator=torch.Generator().manual_seed(1))
    sampler = ClusterSampler(labels, 3, 1.0, 0.89)
    first = sampler(logits, torch.Generator().manual_seed(42))  # positional generator
    again = sampler(logits, generator=torch.Generator().manual_seed(42))
    other = sampler(logits, generator=torch.Generator().manual_seed(43))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == (16,)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_logits_are_computed_in_float32(dtype: torch.dtype) -> None:
    labels = torch.randint(0, 8, (64,), generator=torch.Generator().manual_seed(0))
    logits = torch.randn(10, 64, generator=torch.Generator().manual_seed(1)).to(dtype)
    uniforms = torch.rand(10, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sampler = ClusterSampler(labels, 3, 1.15, 1.0)
    assert torch.equal(
        sampler(logits, uniforms=uniforms), sampler(logits.float(), uniforms=uniforms)
    )


def test_cluster_probs_matches_a_float64_loop() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 12, generator=gen)
    masses = cluster_probs(logits, LABELS, NUM_CLUSTERS, temperature=1.15)
    assert masses.shape == (2, 3, NUM_CLUSTERS)
    p = (logits.double() / 1.15).softmax(-1)
    expected = torch.stack([p[..., torch.eq(LABELS, c)].sum(-1) for c in range(NUM_CLUSTERS)], -1)
    torch.testing.assert_close(masses.double(), expected, rtol=1e-6, atol=1e-7)


def test_k_equal_to_the_number_of_clusters_and_empty_clusters() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(1000, 12, generator=gen)
    sampler = ClusterSampler(LABELS, 6, 1.0, 1.0, num_clusters=6)  # clusters 4, 5 have no tokens
    ids = sampler(logits, generator=gen)
    assert ids.min() >= 0 and ids.max() < 12
    with pytest.raises(ValueError, match=r"top_k_clusters must be an int in \[1, num_clusters=4\]"):
        ClusterSampler(LABELS, 5, 1.0, 1.0)
    with pytest.raises(ValueError, match="top_k_clusters"):
        ClusterSampler(LABELS, 0, 1.0, 1.0)


@pytest.mark.parametrize(("value", "message"), [(float("nan"), "NaN"), (float("inf"), r"\+inf")])
def test_nan_and_inf_rows_raise(value: float, message: str) -> None:
    logits = torch.randn(4, 3, 12)
    logits[2, 1, 7] = value
    with pytest.raises(ValueError, match=f"row 7 .*{message}"):
        ClusterSampler(LABELS, 2)(logits, generator=torch.Generator().manual_seed(0))


def test_all_masked_row_raises() -> None:
    logits = torch.randn(3, 12)
    logits[1] = float("-inf")
    with pytest.raises(ValueError, match=r"row 1 .*entirely masked"):
        ClusterSampler(LABELS, 2)(logits)


def test_vocabulary_mismatch_and_bad_arguments_raise() -> None:
    sampler = ClusterSampler(LABELS, 2)
    with pytest.raises(ValueError, match=r"logits have 13 columns .* logits\[\.\.\., :12\]"):
        sampler(torch.randn(2, 13))
    with pytest.raises(ValueError, match="float tensor"):
        sampler(torch.ones(2, 12, dtype=torch.int64))
    with pytest.raises(ValueError, match="uniforms must have shape"):
        sampler(torch.randn(2, 12), uniforms=torch.rand(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="temperature must be"):
        ClusterSampler(LABELS, 2, 0.0)
    with pytest.raises(ValueError, match="cluster_temperature must be"):
        ClusterSampler(LABELS, 2, 1.0, float("nan"))


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        (torch.tensor([0.0, 1.0]), {}, "integer dtype"),
        (torch.tensor([[0, 1]]), {}, "1-D"),
        (torch.tensor([0, -1, 2]), {}, ">= 0"),
        (torch.tensor([0, 1, 4]), {"num_clusters": 4}, r"\[0, 4\)"),
        (torch.tensor([], dtype=torch.int64), {}, "empty"),
    ],
)
def test_bad_labels_raise(labels: torch.Tensor, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClusterSampler(labels, 1, **kwargs)


def test_int32_labels_and_labels_are_not_aliased() -> None:
    labels = LABELS.to(torch.int32)
    sampler = ClusterSampler(labels, 2)
    labels[0] = 3
    assert sampler.labels.dtype == torch.int64 and int(sampler.labels[0]) == 0
    assert sampler.num_clusters == NUM_CLUSTERS and sampler.vocab_size == 12


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 6),
    vocab=st.integers(2, 40),
    clusters=st.integers(1, 8),
    data=st.data(),
)
def test_property_vectorised_equals_reference(
    rows: int, vocab: int, clusters: int, data: st.DataObject
) -> None:
    seed = data.draw(st.integers(0, 2**31 - 1))
    k = data.draw(st.integers(1, clusters))
    t1 = data.draw(st.floats(0.3, 3.0))
    t2 = data.draw(st.floats(0.3, 3.0))
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, clusters, (vocab,), generator=gen)
    logits = torch.randn(rows, vocab, generator=gen, dtype=torch.float64) * 4
    uniforms = torch.rand(rows, 2, generator=gen, dtype=torch.float64)
    sampler = ClusterSampler(labels, k, t1, t2, num_clusters=clusters)
    fast = sampler(logits, uniforms=uniforms)
    ref = cluster_sample_reference(logits, labels, k, t1, t2, uniforms, clusters)
    assert torch.equal(fast, ref)
