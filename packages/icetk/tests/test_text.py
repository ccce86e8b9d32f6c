"""Text tokenizer: specials, classes, round-trips.

Normalisation rule of the round-trip property: our trainer uses sentencepiece's ``identity``
normalizer with ``remove_extra_whitespaces=False`` and byte fallback, so for every string ``s``
``decode_text(encode_text(s)) == s.replace("▁", " ")``: the only change is that the literal
word-boundary character U+2581 comes back as a space (sentencepiece's whitespace escape).
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icetk import TextTokenizer, VocabularyLayout
from icetk.layout import DEFAULT_SPECIAL_TOKENS
from icetk.text import parse_model
from icetk.train_text import piece_class

SAMPLES = [
    "a photo of a cat on a red chair.",
    "一只猫坐在红色的椅子上。",
    "mixed 混合 text，with full-width punctuation！（括号）",
    "emoji 😀🐱🎨 and 👨‍👩‍👧 family",
    "line one\nline two\r\n\ttabbed  double  spaces ",
    "",
    " leading space",
    "Ünïcödé café ÉCOLE Привет مرحبا",
]


def normalise(s: str) -> str:
    return s.replace("▁", " ")


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_examples(text_tokenizer: TextTokenizer, text: str) -> None:
    ids = text_tokenizer.encode_text(text)
    assert all(
        text_tokenizer.layout.text_offset <= i < text_tokenizer.layout.text_stop for i in ids
    )
    assert text_tokenizer.decode_text(ids) == normalise(text)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_round_trip_property_arbitrary_unicode(text_tokenizer: TextTokenizer, text: str) -> None:
    assert text_tokenizer.decode_text(text_tokenizer.encode_text(text)) == normalise(text)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["😀", "🐱", "猫", "。", "！", "，", "\n", " ", "cat", "Ä"]),
            st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
            st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
        ),
        max_size=30,
    ).map("".join)
)
def test_round_trip_property_emoji_and_cjk(text_tokenizer: TextTokenizer, text: str) -> None:
    assert text_tokenizer.decode_text(text_tokenizer.encode_text(text)) == text


@pytest.mark.parametrize("token", DEFAULT_SPECIAL_TOKENS)
@pytest.mark.parametrize(
    "template",
    ["一只猫坐在椅子上 高清摄影 隔绝{}", "a cat on a chair {}", "{}", "x{}y", "猫{}。 {} dog"],
)
def test_special_token_in_prompt_is_one_id(
    text_tokenizer: TextTokenizer, token: str, template: str
) -> None:
    lay = text_tokenizer.layout
    text = template.format(token, token)
    ids = text_tokenizer.encode_text(text)
    assert ids.count(lay.special_id(token)) == text.count(token)
    assert not any(i in lay.special_token_ids.values() and i != lay.special_id(token) for i in ids)
    assert text_tokenizer.decode_text(ids) == text


def test_language_tag_is_prepended(text_tokenizer: TextTokenizer) -> None:
    lay = text_tokenizer.layout
    assert text_tokenizer.encode_text("cat", language_tag="english")[0] == lay.boe_id
    assert text_tokenizer.encode_text("猫", language_tag="chinese")[0] == lay.boc_id
    assert text_tokenizer.encode_texts(["cat", "猫"]) == [
        text_tokenizer.encode_text("cat"),
        text_tokenizer.encode_text("猫"),
    ]
    assert text_tokenizer.decode_texts(text_tokenizer.encode_texts(["a", "b"])) == ["a", "b"]


def test_trained_class_ranges_classify_every_piece(text_tokenizer: TextTokenizer) -> None:
    lay = text_tokenizer.layout
    proto = parse_model(text_tokenizer.model_bytes)
    normal = type(proto.pieces[0]).NORMAL
    for i, piece in enumerate(proto.pieces):
        assert lay.language_of(lay.text_offset + i) == piece_class(
            piece.piece, piece.type == normal
        )
    for word, lang in [("▁cat", "english"), ("猫", "chinese"), ("。", "chinese")]:
        gid = text_tokenizer.piece_to_id(word)
        assert gid != lay.unk_id, word
        assert lay.language_of(gid) == lang
    # ids 0..3 keep the official meaning: <unk>, <s>, </s>, <pad>
    assert [text_tokenizer.id_to_piece(lay.text_offset + i) for i in range(4)] == [
        "<unk>",
        "<s>",
        "</s>",
        "<pad>",
    ]
    assert lay.pad_id == lay.text_offset + 3


@pytest.mark.parametrize(
    ("piece", "normal", "cls"),
    [
        ("▁", True, "common"),
        (",", True, "common"),
        ("<0x0A>", False, "common"),
        ("▁the", True, "english"),
        ("é", True, "english"),
        ("你好", True, "chinese"),
        ("！", True, "chinese"),
        ("😀", True, "rare"),
        ("мир", True, "rare"),
    ],
)
def test_piece_class_rule(piece: str, normal: bool, cls: str) -> None:
    assert piece_class(piece, normal) == cls


def test_decode_rejects_image_ids(text_tokenizer: TextTokenizer) -> None:
    with pytest.raises(ValueError, match=r"not text ids"):
        text_tokenizer.decode_text([0, 5])


def test_layout_size_mismatch_is_an_error(text_model) -> None:
    model, _ = text_model
    with pytest.raises(ValueError, match=r"expects num_text_tokens=130000"):
        TextTokenizer(model, VocabularyLayout.official())


def test_corrupt_and_missing_model_files(tmp_path, text_model) -> None:
    _, lay = text_model
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"\x00\xffnot a protobuf at all" * 10)
    with pytest.raises(ValueError, match=r"bad.model"):
        TextTokenizer.from_file(bad, lay)
    with pytest.raises(FileNotFoundError, match=r"nothere.model"):
        TextTokenizer.from_file(tmp_path / "nothere.model", lay)


def test_small_corpus_trains_with_soft_vocab_limit(tmp_path) -> None:
    from icetk import TextTrainConfig, train_text_tokenizer

    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\n你好世界\n" * 20, encoding="utf-8")
    model, lay = train_text_tokenizer(
        corpus, num_image_tokens=16, config=TextTrainConfig(vocab_size=5000)
    )
    assert lay.num_text_tokens < 5000
    tok = TextTokenizer(model, lay)
    assert tok.decode_text(tok.encode_text("hello 你好 😀")) == "hello 你好 😀"


def test_too_small_a_vocabulary_for_the_corpus_characters_is_a_clear_error(tmp_path) -> None:
    from icetk import TextTrainConfig, train_text_tokenizer

    corpus = tmp_path / "c.txt"
    han = "".join(chr(0x4E00 + i) for i in range(120))  # 120 distinct characters
    corpus.write_text((han + "\n") * 10, encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab_size 300 is too small .* at least \d+ pieces"):
        train_text_tokenizer(corpus, num_image_tokens=16, config=TextTrainConfig(vocab_size=300))
