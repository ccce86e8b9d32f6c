"""Shared fixtures: procedural images, a tiny trained text model, a tiny tokenizer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from icetk import HVQVAE, IceTokenizer, ImageTokenizer, TextTokenizer, TextTrainConfig, VQVAEConfig
from icetk.train_text import train_text_tokenizer

# Tiny convolutions are dominated by OpenMP hand-offs; on a shared 2-core box two spinning
# threads made a training step 20x slower (1.6 s vs 0.04 s of CPU). One thread is fastest here.
torch.set_num_threads(1)


EN = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "a",
    "photo",
    "of",
    "cat",
    "sitting",
    "on",
    "red",
    "chair",
    "in",
    "garden",
    "beautiful",
    "painting",
    "mountains",
    "river",
    "sunset",
    "high",
    "resolution",
]
ZH = list("一只猫坐在红色的椅子上花园里美丽的山水画高清摄影小狗草地奔跑天空中飞翔鸟你好世界")


@pytest.fixture(scope="session")
def corpus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small bilingual corpus (English words, Chinese characters, a few emoji)."""
    rnd = random.Random(0)
    lines = []
    for i in range(1500):
        if i % 2:
            lines.append(
                " ".join(rnd.choices(EN, k=rnd.randint(3, 10))) + rnd.choice([".", "!", ","])
            )
        else:
            lines.append(
                "".join(rnd.choices(ZH, k=rnd.randint(4, 16))) + rnd.choice(["。", "！", "，"])
            )
    lines += ["emoji 😀🐱🎨 test", "café naïve ÉCOLE", "Привет мир"] * 5
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def text_model(corpus_path: Path):
    """(model bytes, layout) of a ~500-piece sentencepiece model with 64 image tokens."""
    return train_text_tokenizer(
        corpus_path, num_image_tokens=64, config=TextTrainConfig(vocab_size=500)
    )


@pytest.fixture(scope="session")
def text_tokenizer(text_model) -> TextTokenizer:
    return TextTokenizer(*text_model)


@pytest.fixture(scope="session")
def tiny_tokenizer(text_tokenizer: TextTokenizer) -> IceTokenizer:
    torch.manual_seed(0)
    return IceTokenizer(text_tokenizer, ImageTokenizer(HVQVAE(VQVAEConfig.tiny(num_codes=64))))
