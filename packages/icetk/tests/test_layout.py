import pytest
import torch

from icetk import VocabularyLayout


def test_official_layout_numbers_match_reference() -> None:
    lay = VocabularyLayout.official()
    ranges = {k: (r.start, r.stop) for k, r in lay.class_ranges.items()}
    assert ranges == {
        "common": (20000, 20100),
        "english": (20100, 83823),
        "chinese": (83823, 145653),
        "rare": (145653, 150000),
    }
    assert (lay.boi_id, lay.boe_id, lay.boc_id) == (150000, 150001, 150002)
    assert lay.vocab_size == 150003
    assert (lay.pad_id, lay.unk_id) == (20003, 20000)


@pytest.mark.parametrize(
    ("token_id", "expected"),
    [
        (0, "image"),
        (19999, "image"),
        (20000, "common"),
        (20099, "common"),
        (20100, "english"),
        (83822, "english"),
        (83823, "chinese"),
        (145652, "chinese"),
        (145653, "rare"),
        (145803, "rare"),
        (149999, "rare"),
        (150000, "special"),
        (150002, "special"),
    ],
)
def test_language_of_classifies_boundaries(token_id: int, expected: str) -> None:
    assert VocabularyLayout.official().language_of(token_id) == expected


@pytest.mark.parametrize("token_id", [-1, 150003, 10**9])
def test_language_of_rejects_ids_outside_the_vocabulary(token_id: int) -> None:
    with pytest.raises(ValueError, match=r"outside every range"):
        VocabularyLayout.official().language_of(token_id)


def test_allowed_ids_is_the_union_of_the_chosen_ranges() -> None:
    lay = VocabularyLayout.official()
    mask = lay.allowed_ids(("common", "english"), vocab_size=150010)
    assert mask.shape == (150010,) and mask.dtype == torch.bool
    expected = torch.zeros(150010, dtype=torch.bool)
    expected[20000:83823] = True
    assert torch.equal(mask, expected)
    zh = lay.allowed_ids(["chinese"])
    assert zh.sum() == 145653 - 83823 and zh[83823] and not zh[83822] and not zh[145653]
    assert lay.allowed_ids(["image"]).sum() == 20000
    with pytest.raises(ValueError, match=r"unknown language class"):
        lay.allowed_ids(["klingon"])
    with pytest.raises(ValueError, match=r"smaller"):
        lay.allowed_ids(["image"], vocab_size=100)


def test_span_language_follows_pretraining_rule() -> None:
    lay = VocabularyLayout.official()
    assert lay.span_language([20007, 20100, 83822]) == "english"  # common counts as English
    assert lay.span_language([20100, 83823]) == "chinese"
    assert lay.span_language([145803]) == "chinese"  # rare symbols make a span BOC
    assert lay.language_tag_id("english") == 150001
    assert lay.language_tag_id("chinese") == 150002
    with pytest.raises(ValueError, match=r"language must be"):
        lay.language_tag_id("french")


def test_json_round_trip() -> None:
    for lay in (
        VocabularyLayout.official(),
        VocabularyLayout.from_class_sizes(
            1024, {"common": 10, "english": 5, "rare": 2}, pad_piece_id=3
        ),
    ):
        assert VocabularyLayout.from_json(lay.to_json()) == lay


def test_from_class_sizes_places_text_after_images() -> None:
    lay = VocabularyLayout.from_class_sizes(1024, {"common": 10, "english": 5, "chinese": 7})
    assert lay.class_ranges["english"] == range(1034, 1039)
    assert lay.class_ranges["rare"] == range(1046, 1046)
    assert lay.boi_id == 1046 and lay.vocab_size == 1049


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_image_tokens": 0}, "num_image_tokens"),
        ({"text_offset": 10}, "overlap"),
        ({"class_sizes": (1, 2, 3, 5)}, "sum to"),
        ({"class_sizes": (1, 2, 3)}, "4 non-negative"),
        ({"special_tokens": ("a", "a")}, "distinct"),
        ({"pad_id": 5}, "pad_id"),
    ],
)
def test_layout_validation(kwargs: dict, match: str) -> None:
    base = dict(num_image_tokens=20, text_offset=20, num_text_tokens=10, class_sizes=(1, 2, 3, 4))
    with pytest.raises(ValueError, match=match):
        VocabularyLayout(**{**base, **kwargs})


def test_from_dict_rejects_unknown_fields() -> None:
    d = VocabularyLayout.official().to_dict()
    with pytest.raises(ValueError, match=r"unknown fields"):
        VocabularyLayout.from_dict({**d, "bogus": 1})
