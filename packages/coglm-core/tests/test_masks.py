import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coglm_core import (
    RegionMask,
    coglm_attention_mask,
    completion_mask,
    inverse_prompt_mask,
    text_image_generation_mask,
    text_upweighting_bias,
)


def _matrix(rows: str) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in row] for row in rows.split()])


def test_figure2_example() -> None:
    # Paper figure 2: rows/columns 2,3,4 and 6,7,8 are masked (two regions).
    expected = _matrix(
        """
        1100010001
        1100010001
        1110010001
        1111010001
        1111110001
        1100010001
        1111111001
        1111111101
        1111111111
        1100010001
        """
    )
    assert torch.equal(coglm_attention_mask(10, [(2, 5), (6, 9)]), expected)
    # "rows and columns of all the masked tokens form a lower-triangular matrix"
    idx = torch.tensor([2, 3, 4, 6, 7, 8])
    assert torch.equal(expected[idx][:, idx], torch.ones(6, 6, dtype=torch.bool).tril())


def _eq1(seq_len: int, regions: list[tuple[int, int]]) -> torch.Tensor:
    inside = [any(a <= j < b for a, b in regions) for j in range(seq_len)]
    return torch.tensor(
        [
            [(not inside[j]) or (inside[i] and inside[j] and j <= i) for j in range(seq_len)]
            for i in range(seq_len)
        ]
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.lists(st.tuples(st.integers(0, 39), st.integers(1, 12)), max_size=5))
def test_structured_equals_dense_on_random_regions(
    seq_len: int, raw: list[tuple[int, int]]
) -> None:
    regions = [(s, min(s + n, seq_len)) for s, n in raw if s < seq_len]
    dense = coglm_attention_mask(seq_len, regions)
    assert torch.equal(dense, _eq1(seq_len, regions))
    structured = RegionMask.from_regions(seq_len, [regions, regions[:1]])
    assert torch.equal(structured.dense()[0], dense)
    assert torch.equal(structured.dense()[1], coglm_attention_mask(seq_len, regions[:1]))
    for start in range(0, seq_len, 7):
        stop = min(start + 7, seq_len)
        assert torch.equal(structured.rows(start, stop)[0], dense[start:stop])


# 2 bidirectional prefix tokens, then separator + 2 causal tokens: the (2, 2) generation mask
# (text | BOI | image) and the (2, 2) inverse-prompt mask (image | BOC | caption) alike
PREFIX2_CAUSAL3 = _matrix(
    """
    11000
    11000
    11100
    11110
    11111
    """
)


def test_text_image_generation_mask_hand_written() -> None:
    assert torch.equal(text_image_generation_mask(2, 2), PREFIX2_CAUSAL3)


def test_inverse_prompt_and_completion_masks() -> None:
    assert torch.equal(inverse_prompt_mask(2, 2), PREFIX2_CAUSAL3)
    # text 2 | BOI | context 2 | region 2
    expected = _matrix(
        """
        1100000
        1100000
        1110000
        1111100
        1111100
        1111110
        1111111
        """
    )
    assert torch.equal(completion_mask(2, 2, 2), expected)


def test_upweighting_bias() -> None:
    bias = text_upweighting_bias(5, 2, 1.4)
    assert torch.equal(bias[:, :2], torch.full((5, 2), 1.4)) and not bias[:, 2:].any()
