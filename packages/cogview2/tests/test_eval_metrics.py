"""Evaluation metrics against float64 references on fresh random inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from cogview2.evaluation import frechet_distance, psnr, retrieval_accuracy, sample_grid
from cogview2.evaluation.classifier import EmojiClassifier, predict, train_classifier


def test_psnr_matches_definition():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=g)
    y = x + 0.05 * torch.randn(3, 3, 8, 8, generator=g)
    want = [
        10 * np.log10(1 / np.mean((a.double().numpy() - np.clip(b.double().numpy(), 0, 1)) ** 2))
        for a, b in zip(x, y, strict=True)
    ]
    assert psnr(x, y).tolist() == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="one shape"):
        psnr(x, y[:2])


def _fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.real(scipy.linalg.sqrtm(ca @ cb))
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * root))


def test_frechet_distance_matches_scipy_sqrtm_formula():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 5))
    b = rng.normal(size=(150, 5)) @ rng.normal(size=(5, 5)) + 0.7
    assert frechet_distance(a, b) == pytest.approx(_fid_scipy(a, b), rel=1e-8)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0, abs=1e-9)
    # singular covariances (fewer samples than features) stay finite and non-negative
    small = frechet_distance(rng.normal(size=(3, 16)), rng.normal(size=(4, 16)))
    assert np.isfinite(small) and small >= 0
    with pytest.raises(ValueError, match="N, M >= 2"):
        frechet_distance(a[:1], b)


def test_retrieval_accuracy_counts_ties_as_wrong():
    scores = torch.tensor([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0], [0.0, 5.0, 1.0]])
    assert retrieval_accuracy(scores, torch.tensor([0, 0, 1])) == pytest.approx(2 / 3)
    assert retrieval_accuracy(scores, torch.tensor([2, 1, 2])) == 0.0


def test_classifier_learns_a_separable_toy_task():
    g = torch.Generator().manual_seed(0)
    dark = (torch.rand(16, 3, 16, 16, generator=g) * 60).to(torch.uint8)
    light = (195 + torch.rand(16, 3, 16, 16, generator=g) * 60).to(torch.uint8)
    images = torch.cat([dark, light])
    labels = torch.tensor([0] * 16 + [1] * 16)
    from cogview2.evaluation import ClassifierConfig

    cfg = ClassifierConfig(image_size=16, width=4, steps=10, batch_size=16, lr=1e-2)
    model = train_classifier(images, labels, labels, 2, 2, cfg)
    assert isinstance(model, EmojiClassifier)
    out = predict(model, images)
    assert out["features"].shape == (32, model.feature_dim)
    assert (out["group"] == labels).float().mean() == 1.0


def test_sample_grid_layout():
    from PIL import Image

    images = [Image.new("RGB", (20, 20), c) for c in ("red", "green", "blue")]
    grid = sample_grid(images, ["a", "b", "c"], columns=2, tile=32)
    assert grid.size[0] == 2 * (32 + 4) + 4 and grid.size[1] > 2 * 32
    assert grid.getpixel((4 + 5, 4 + 5)) == (255, 0, 0)
    with pytest.raises(ValueError, match="one caption per image"):
        sample_grid(images, ["a"])


def test_caption_font_draws_accented_letters():
    from PIL import ImageFont

    from cogview2.evaluation.grid import CAPTION_FONTS, caption_font

    font = caption_font()
    if not isinstance(font, ImageFont.FreeTypeFont) or Path(font.path).name not in CAPTION_FONTS:
        pytest.skip(f"none of {CAPTION_FONTS} is installed")
    tofu = bytes(font.getmask("\U0010fffd"))  # an unassigned code point: the missing-glyph box
    for letter in "ãéíñ":
        assert bytes(font.getmask(letter)) != tofu, letter
