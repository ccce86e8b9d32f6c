"""Warpers against simple float64 references, ties, composition and the processor convention."""

from __future__ import annotations

import math

import pytest
import torch

from cluster_sampling import IdMask, MinP, Temperature, TopK, TopP, WarperList

NEG_INF = float("-inf")


def random_scores(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2


def test_temperature() -> None:
    scores = random_scores(3, 7)
    torch.testing.assert_close(Temperature(0.7)(scores).double(), scores.double() / 0.7)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="temperature"):
            Temperature(bad)


def test_top_k_matches_a_per_row_loop() -> None:
    scores = random_scores(2, 4, 50)
    out = TopK(7)(scores)
    flat, flat_out = scores.reshape(-1, 50).double(), out.reshape(-1, 50)
    for row, row_out in zip(flat, flat_out, strict=True):
        kth = sorted(row.tolist(), reverse=True)[6]
        keep = row >= kth
        assert torch.equal(torch.isfinite(row_out), keep)
        torch.testing.assert_close(row_out[keep].double(), row[keep])


def test_top_k_keeps_ties_at_the_threshold_and_clamps_k() -> None:
    scores = torch.tensor([[3.0, 1.0, 2.0, 2.0, 2.0, 0.0]])
    out = TopK(2)(scores)
    assert torch.isfinite(out).tolist() == [[True, False, True, True, True, False]]
    assert torch.equal(TopK(100)(scores), scores)
    with pytest.raises(ValueError, match="k must be"):
        TopK(0)


def test_top_p_matches_a_float64_reference() -> None:
    scores = random_scores(5, 30, seed=1)
    for p in (0.1, 0.5, 0.9):
        out = TopP(p)(scores)
        for row, row_out in zip(scores.double(), out, strict=True):
            probs = row.softmax(0)
            order = probs.argsort(descending=True)
            before = probs[order].cumsum(0) - probs[order]
            keep = torch.zeros(30, dtype=torch.bool)
            keep[order[before <= p]] = True
            keep[order[0]] = True
            assert torch.equal(torch.isfinite(row_out), keep)
    assert torch.equal(TopP(1.0)(scores), scores)
    assert torch.isfinite(TopP(1e-6, min_tokens_to_keep=3)(scores)).sum(-1).eq(3).all()
    with pytest.raises(ValueError, match="p must be"):
        TopP(0.0)


def test_min_p_matches_a_float64_reference() -> None:
    scores = random_scores(4, 25, seed=2)
    out = MinP(0.2)(scores)
    probs = scores.double().softmax(-1)
    keep = probs >= 0.2 * probs.amax(-1, keepdim=True)
    assert torch.equal(torch.isfinite(out), keep)
    with pytest.raises(ValueError, match="p must be"):
        MinP(1.5)


def test_id_mask_ranges_and_slices() -> None:
    vocab = 20
    scores = random_scores(3, vocab, seed=3)
    images_only = IdMask.allow_ranges(vocab, [(0, 8)])
    assert torch.isfinite(images_only(scores)).sum(-1).eq(8).all()
    invalid = IdMask.block_ranges(vocab, [slice(8, None)])  # CogView2's invalid_slices
    assert torch.equal(invalid(scores), images_only(scores))
    two_ranges = IdMask.allow_ranges(vocab, [(2, 4), (10, 13)])
    kept = torch.isfinite(two_ranges(scores))[0].nonzero().flatten().tolist()
    assert kept == [2, 3, 10, 11, 12]
    with pytest.raises(ValueError, match="columns but the id mask covers"):
        images_only(random_scores(3, vocab + 1))
    with pytest.raises(ValueError, match="0 <= start <= stop"):
        IdMask.allow_ranges(vocab, [(5, 30)])
    with pytest.raises(ValueError, match="masks out every id"):
        IdMask.allow_ranges(vocab, [])
    with pytest.raises(ValueError, match="1-D bool"):
        IdMask(torch.ones(vocab))


def test_processor_convention_and_composition() -> None:
    scores = random_scores(2, 40, seed=4)
    input_ids = torch.zeros(2, 5, dtype=torch.int64)
    chain = WarperList([IdMask.allow_ranges(40, [(0, 30)]), Temperature(0.5), TopK(5), TopP(0.9)])
    plain = chain(scores)
    as_processor = chain(input_ids, scores)
    assert torch.equal(plain, as_processor)
    step = TopP(0.9)(TopK(5)(Temperature(0.5)(IdMask.allow_ranges(40, [(0, 30)])(scores))))
    assert torch.equal(plain, step)
    assert not torch.isfinite(plain[:, 30:]).any()
    assert len(chain) == 4

    seen: list[int] = []

    def hf_style(ids: torch.Tensor, s: torch.Tensor) -> torch.Tensor:  # a foreign processor
        seen.append(ids.shape[1])
        return s + 1

    torch.testing.assert_close(WarperList([hf_style])(input_ids, scores), scores + 1)
    assert seen == [5]
    with pytest.raises(TypeError, match="takes"):
        TopK(2)(input_ids, scores, scores)
    with pytest.raises(ValueError, match="callable"):
        WarperList([3])  # type: ignore[list-item]


def test_warpers_do_not_modify_their_input() -> None:
    scores = random_scores(2, 10, seed=5)
    copy = scores.clone()
    for warper in (
        Temperature(2.0),
        TopK(3),
        TopP(0.5),
        MinP(0.3),
        IdMask.allow_ranges(10, [(0, 4)]),
    ):
        warper(scores)
    assert torch.equal(scores, copy)
