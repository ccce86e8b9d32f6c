"""``cogview2 eval-coco`` end to end on CPU: a synthetic COCO captions set, the tiny pipeline and
a randomly initialised InceptionV3 (torch-fidelity's architecture) saved to a file."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

if importlib.util.find_spec("torch_fidelity") is None:  # its __init__ needs torchvision: not run
    pytest.skip("eval-coco needs torch-fidelity (cogview2[coco])", allow_module_level=True)

from cogview2.cli import main
from cogview2.evaluation.coco import (
    FeatureMoments,
    _inception_module,
    frechet_from_moments,
    inception_score,
    load_inception,
    prepare_image,
    select_captions,
)
from cogview2.evaluation.metrics import frechet_distance


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A state dict of torch-fidelity's FID InceptionV3 with random weights (seed 0).

    He-initialised convolutions: with PyTorch's default initialisation the activations shrink
    layer by layer and the features of every image are ~1e-8 (every FID 0).
    """
    cls = _inception_module().FeatureExtractorInceptionV3
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "load", lambda *a, **k: {})
        mp.setattr(cls, "load_state_dict", lambda self, *a, **k: None)
        torch.manual_seed(0)
        model = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path="random")
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=module.in_features**-0.5)
    path = tmp_path_factory.mktemp("inception") / "inception-random.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """Six fake validation images (not square) and a captions file in COCO's format: two
    captions for image 1, none for image 6, and a caption of an image that is not listed."""
    root = tmp_path_factory.mktemp("coco")
    images = root / "val2014"
    images.mkdir()
    colours = ["red", "green", "blue", "orange", "purple", "gray"]
    entries = []
    for k, colour in enumerate(colours, start=1):
        im = Image.new("RGB", (64, 48), "white")
        ImageDraw.Draw(im).ellipse((8 + k, 8, 40 + k, 40), fill=colour)
        name = f"COCO_val2014_{k:012d}.jpg"
        im.save(images / name, quality=95)
        entries.append({"id": k, "file_name": name, "height": 48, "width": 64})
    notes = [
        {"id": 10 + k, "image_id": k, "caption": f"a  {c} apple\n on a table"}
        for k, c in enumerate(colours[:5], start=1)
    ]
    notes += [{"id": 99, "image_id": 1, "caption": "a second caption"},
              {"id": 100, "image_id": 77, "caption": "no such image"}]  # fmt: skip
    path = root / "captions_val2014.json"
    path.write_text(json.dumps({"images": entries, "annotations": notes}), encoding="utf-8")
    return path, images


def test_select_captions_one_per_image(coco):
    path, images = coco
    chosen = select_captions(path, images, 30000)
    assert [c.image_id for c in chosen] == [1, 2, 3, 4, 5]
    assert chosen[0].caption == "a red apple on a table"
    sample = select_captions(path, images, 3, seed=1)
    assert len(sample) == 3 and [c.image_id for c in sample] == sorted(c.image_id for c in sample)
    assert sample == select_captions(path, images, 3, seed=1)
    with pytest.raises(ValueError, match="-n/--num-captions"):
        select_captions(path, images, 1)
    with pytest.raises(FileNotFoundError, match="--images"):
        select_captions(path, images / "none", 3)


def test_formulas_match_the_references():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 6, generator=g), torch.randn(30, 6, generator=g) * 1.5 + 0.3
    ma, mb = FeatureMoments(6), FeatureMoments(6)
    ma.add(a[:25])
    ma.add(a[25:])
    mb.add(b)
    assert np.allclose(ma.cov, np.cov(a.double().numpy(), rowvar=False))
    assert frechet_from_moments(ma, mb) == pytest.approx(frechet_distance(a, b), rel=1e-6)
    few_a, few_b = FeatureMoments(64), FeatureMoments(64)  # fewer rows than dims: low rank
    few_a.add(torch.randn(5, 64, generator=g))
    few_b.add(torch.randn(7, 64, generator=g) + 0.5)
    full = frechet_from_moments(few_a, few_b)
    few_a.rows = few_b.rows = None  # the general route
    assert full == pytest.approx(frechet_from_moments(few_a, few_b), rel=1e-6)
    mean, std = inception_score(torch.zeros(20, 10))  # identical predictions: IS = 1
    assert (mean, std) == (pytest.approx(1.0), pytest.approx(0.0))
    onehot = torch.full((20, 10), -30.0)
    onehot[torch.arange(20), torch.arange(20) % 10] = 30.0  # 10 classes, confident: IS = 10
    assert inception_score(onehot, splits=1)[0] == pytest.approx(10.0, rel=1e-3)


def test_prepare_image_crops_resizes_and_blurs(coco):
    _, images = coco
    path = next(images.iterdir())
    sharp, blurred = prepare_image(path, 32, 0), prepare_image(path, 32, 2)
    assert sharp.shape == (3, 32, 32) and sharp.dtype == torch.uint8
    assert blurred.float().std() < sharp.float().std()


def test_bad_inception_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--inception"):
        load_inception(tmp_path / "none.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"--inception .* not a state-dict"):
        load_inception(tmp_path / "junk.pth")
    torch.save({"w": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not InceptionV3 FID weights"):
        load_inception(tmp_path / "other.pth")


def test_eval_coco_end_to_end_and_resume(coco, inception_weights, tmp_path, capsys):
    path, images = coco
    out = tmp_path / "eval"
    argv = [
        "eval-coco", "--captions", str(path), "--images", str(images), "--inception",
        str(inception_weights), "-o", str(out), "-n", "4", "--samples-per-caption", "2",
        "--size", "64", "--batch-size", "4", "--tiny", "--stages", "coarse", "--threads", "1",
        "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| Model | FID-0 | FID-1 | FID-2 | FID-4 | FID-8 | IS |" in printed
    result = json.loads((out / "coco-eval.json").read_text())
    assert set(result["fid"]) == {"0", "1", "2", "4", "8"}
    assert all(math.isfinite(v) and v > 0 for v in result["fid"].values())
    assert result["inception_score"] >= 1.0 - 1e-9
    assert (result["num_captions"], result["samples_per_caption"], result["size"]) == (4, 2, 64)
    assert (out / "coco-eval.md").read_text().startswith("| Model | FID-0")
    captions = [json.loads(x) for x in (out / "captions.jsonl").read_text().splitlines()]
    assert len(captions) == 4
    manifest = (out / "samples" / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 4
    assert json.loads(manifest[0])["prompt"] == captions[0]["caption"]
    assert json.loads(manifest[0])["job_images"] == 1  # the best of 2 candidates

    assert main([*argv, "--blur-radii", "0"]) == 0  # a rerun generates nothing
    assert (out / "samples" / "manifest.jsonl").read_text().splitlines() == manifest
    assert json.loads((out / "coco-eval.json").read_text())["fid"] == {"0": result["fid"]["0"]}
    capsys.readouterr()
    assert main([*argv, "--samples-per-caption", "3"]) == 2
    assert "candidates: 2 there, 3 now" in capsys.readouterr().err
