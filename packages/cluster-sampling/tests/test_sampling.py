"""Plain samplers: distribution, determinism, fast top-k == reference, edge cases."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

import cluster_sampling._core as core
from cluster_sampling import (
    Temperature,
    TokenSampler,
    TopK,
    TopKSampler,
    TopP,
    sample,
    sample_probs,
)
from cluster_sampling.reference import top_k_sample_reference


def chi_square_p(ids: torch.Tensor, probs: torch.Tensor) -> float:
    counts = torch.bincount(ids.flatten(), minlength=probs.numel()).double()
    expected = probs.double() / probs.double().sum() * ids.numel()
    support = expected > 0
    assert counts[~support].sum() == 0, "a zero-probability id was sampled"
    return float(chisquare(counts[support].numpy(), expected[support].numpy()).pvalue)


def test_sample_frequencies() -> None:
    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(9, generator=gen)
    logits[4] = float("-inf")
    ids = sample(logits.expand(30_000, 9), gen)
    assert chi_square_p(ids, logits.double().softmax(0)) > 1e-3


def test_sample_probs_frequencies_unnormalised() -> None:
    gen = torch.Generator().manual_seed(12)
    weights = torch.tensor([0.5, 0.0, 2.0, 1.0, 0.25])
    ids = sample_probs(weights.expand(20_000, 5), gen)
    assert chi_square_p(ids, weights / weights.sum()) > 1e-3


@pytest.mark.parametrize(("k", "t"), [(3, 1.0), (5, 0.8), (40, 1.0)])
def test_top_k_sampler_frequencies(k: int, t: float) -> None:
    gen = torch.Generator().manual_seed(13)
    logits = torch.randn(16, generator=gen)
    ids = TopKSampler(k, t)(logits.expand(30_000, 16), gen)
    warped = TopK(k)(logits.double() / t)
    assert chi_square_p(ids, warped.softmax(0)) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_top_k_sampler_equals_per_row_reference(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "CHUNK_ELEMENTS", 4 * 200)
    gen = torch.Generator().manual_seed(14)
    logits = (torch.randn(3, 7, 200, generator=gen) * 3).to(dtype)
    logits[0, 0, :50] = 5.0  # ties at the threshold: k = 10 keeps all 50
    logits[1, 2, :] = float("-inf")
    logits[1, 2, 3] = 0.0  # fewer finite entries than k
    uniforms = torch.rand(3, 7, generator=gen, dtype=torch.float64)
    for k in (1, 10, 40, 500):
        fast = TopKSampler(k, 0.9)(logits, uniforms=uniforms)
        ref = top_k_sample_reference(logits.reshape(-1, 200), k, 0.9, uniforms.reshape(-1))
        torch.testing.assert_close(fast.reshape(-1), ref, rtol=0, atol=0)
        generic = TokenSampler([Temperature(0.9), TopK(k)])(logits, uniforms=uniforms)
        torch.testing.assert_close(fast, generic, rtol=0, atol=0)
    assert int(fast[1, 2]) == 3


def test_ties_are_all_sampled() -> None:
    logits = torch.tensor([1.0, 3.0, 3.0, 3.0, 0.0])
    ids = TopKSampler(1)(logits.expand(3000, 5), torch.Generator().manual_seed(0))
    assert sorted(ids.unique().tolist()) == [1, 2, 3]


def test_determinism_and_shapes() -> None:
    logits = torch.randn(2, 3, 50)
    for sampler in (TopKSampler(5), TokenSampler([TopP(0.8)]), sample):
        a = sampler(logits, torch.Generator().manual_seed(5))
        b = sampler(logits, torch.Generator().manual_seed(5))
        assert torch.equal(a, b) and a.shape == (2, 3) and a.dtype == torch.int64
    assert sample(torch.randn(50)).shape == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [(float("nan"), "NaN"), (float("inf"), r"\+inf"), (float("-inf"), "entirely masked")],
)
def test_bad_rows_raise(value: float, message: str) -> None:
    logits = torch.randn(3, 6)
    if value == float("-inf"):
        logits[2] = value
    else:
        logits[2, 4] = value
    for sampler in (TopKSampler(2), TokenSampler(), sample):
        with pytest.raises(ValueError, match=f"row 2 .*{message}"):
            sampler(logits)


def test_warpers_masking_everything_raise() -> None:
    logits = torch.randn(2, 6)
    with pytest.raises(ValueError, match="entirely masked"):
        TokenSampler([Temperature(1.0), lambda s: s.masked_fill(s > -100, float("-inf"))])(logits)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="top_k"):
        TopKSampler(0)
    with pytest.raises(ValueError, match="temperature"):
        TopKSampler(3, -1.0)
    with pytest.raises(ValueError, match="uniforms must have shape"):
        sample(torch.randn(2, 4), uniforms=torch.rand(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        sample(torch.randn(2, 4), uniforms=torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="non-negative"):
        sample_probs(torch.tensor([0.5, -0.1]))
    with pytest.raises(ValueError, match="sums to 0"):
        sample_probs(torch.zeros(2, 3))
