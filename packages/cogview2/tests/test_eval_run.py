"""`cogview2 eval` end to end on the tiny random pipeline and a tiny data set."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from cogview2.data import BuildConfig, EmojiDataset, build_emoji_dataset
from cogview2.data.captions import make_caption
from cogview2.evaluation import ClassifierConfig, EvalConfig, add_eval_command, run_evaluation


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, emoji_roots):
    out = tmp_path_factory.mktemp("emoji") / "data"
    config = BuildConfig(
        styles=("twemoji", "openmoji"), sizes=(32, 96), heldout_fraction=0.5, seed=3, progress=False
    )
    build_emoji_dataset(emoji_roots, out, config)
    return out


# two held-out and two training-concept prompts, a 3-step classifier that sees one render
SMALL_EVAL = EvalConfig(
    num_prompts=2,
    num_distractors=1,
    psnr_images=2,
    grid_tile=48,
    num_seen_prompts=2,
    grid_samples=2,
    fidelity_concepts=2,
    classifier=ClassifierConfig(image_size=16, width=4, steps=3, batch_size=4, max_images=1),
)


def test_eval_writes_table_grid_and_json(tiny_pipe, tiny_data, tmp_path):
    cfg = SMALL_EVAL
    results = run_evaluation(
        tiny_pipe, tiny_data, tmp_path, cfg, weights_name="tiny", progress=False
    ).to_json()
    assert len(results["seen"]["prompts"]) == 2 and 0 <= results["seen"]["gen_group_acc"] <= 1
    assert "training concepts" in (tmp_path / "eval-results.md").read_text()
    assert Image.open(tmp_path / "eval-samples-seen.png").size[0] == 2 * (48 + 4) + 4
    saved = json.loads((tmp_path / "eval-results.json").read_text())
    assert saved["retrieval"] == results["retrieval"]
    assert results["retrieval"]["chance"] == 0.5
    assert 0 <= results["retrieval"]["generated_acc"] <= 1
    assert 0 <= results["classifier"]["gen_group_acc"] <= 1
    assert results["classifier"]["generated_images"] == 2
    assert results["psnr_low"] > 0 and results["frechet"]["generated_vs_real"] >= 0
    table = (tmp_path / "eval-results.md").read_text()
    assert "| (b) group accuracy |" in table and "eval-samples.png" in table
    assert f"{results['psnr_low']:.2f} dB" in table
    # the style and guidance actually used are recorded (None = the pipeline's own)
    assert saved["config"]["guidance_scale"] == tiny_pipe.config.guidance_scale == 1.0
    assert "guidance scale 1.0" in table
    grid = Image.open(tmp_path / "eval-samples.png")
    assert grid.size[0] == 2 * (48 + 4) + 4
    # the per-stage fidelity table: two training concepts, every stage and the ceiling
    fid = saved["fidelity"]
    assert len(fid["concepts"]) == 2 and fid["mean"]["concepts"] == 2
    for concept in fid["concepts"]:
        assert set(concept["psnr"]) == set(concept["ssim"]) == {"bicubic", "dsr", "lopar", "vqvae"}
        assert all(0 < v < 100 for v in concept["psnr"].values())
        assert all(-1 <= v <= 1 for v in concept["ssim"].values())
        assert 0 <= concept["dsr_token_accuracy"] <= 1
        assert len(concept["lopar_token_accuracy"]) == 6
    mean_psnr = sum(c["psnr"]["lopar"] for c in fid["concepts"]) / 2
    assert abs(fid["mean"]["psnr"]["lopar"] - mean_psnr) < 1e-9
    assert "## Per-stage fidelity on training concepts" in table
    assert (
        f"(d) VQ-VAE reconstruction of the real render (the ceiling) | {fid['mean']['psnr']['vqvae']:.2f} dB"
        in table
    )


def test_eval_takes_training_concepts_from_the_chosen_groups_and_styles(
    tiny_pipe, tiny_data, tmp_path
):
    records = EmojiDataset(tiny_data, "train", 32).records
    group = records[-1]["group"]
    cfg = replace(SMALL_EVAL, seen_groups=(group,), seen_styles=("openmoji",))
    wanted = [r for r in records[1:] if r["group"] == group and r["style"] == "openmoji"]
    assert len(wanted) >= 2  # the classifier took records[0]
    results = run_evaluation(tiny_pipe, tiny_data, tmp_path, cfg, progress=False).to_json()
    allowed = {make_caption(r, "en", "name_style") for r in wanted}
    assert set(results["seen"]["prompts"]) <= allowed
    assert (
        f"training concepts of groups {group}; style openmoji"
        in (tmp_path / "eval-results.md").read_text()
    )
    with pytest.raises(ValueError, match=r"seen_groups \['nope'\] are not in the data set"):
        run_evaluation(
            tiny_pipe, tiny_data, tmp_path, replace(cfg, seen_groups=("nope",)), progress=False
        )


def test_eval_refuses_a_data_set_without_the_pipeline_sizes(tiny_pipe, tmp_path, emoji_roots):
    out = tmp_path / "data"
    config = BuildConfig(
        styles=("twemoji",), sizes=(16,), heldout_fraction=0.5, seed=3, progress=False
    )
    build_emoji_dataset(emoji_roots, out, config)
    with pytest.raises(ValueError, match="size 32 not in this data set"):
        run_evaluation(
            tiny_pipe, out, tmp_path / "report", EvalConfig(num_prompts=2), progress=False
        )


def test_eval_command_parses():
    parser = argparse.ArgumentParser()
    add_eval_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["eval", "--weights", "w", "--data", "d", "--out", "docs", "--stages", "coarse"]
    )
    assert args.guidance is None and args.template == "name_style"
    other = parser.parse_args(["eval", "--weights", "w", "--data", "d", "--out", "o",
                               "--guidance", "2.5", "--template", "name"])  # fmt: skip
    assert (other.guidance, other.template) == (2.5, "name")
    assert args.seen_groups == args.seen_styles == []
    some = parser.parse_args(["eval", "--weights", "w", "--data", "d", "--out", "o",
                              "--seen-groups", "food-drink", "animals-nature",
                              "--seen-styles", "twemoji"])  # fmt: skip
    assert (some.seen_groups, some.seen_styles) == (["food-drink", "animals-nature"], ["twemoji"])
    assert (args.weights, args.data, args.out, args.stages) == (
        Path("w"),
        Path("d"),
        Path("docs"),
        ["coarse"],
    )


def test_eval_skips_seen_prompts_when_the_classifier_used_every_render(
    tiny_pipe, tiny_data, tmp_path, caplog
):
    cfg = EvalConfig(
        num_prompts=2,
        num_distractors=1,
        psnr_images=2,
        grid_tile=48,
        fidelity_concepts=0,
        classifier=ClassifierConfig(image_size=16, width=4, steps=3, batch_size=4),
    )
    results = run_evaluation(tiny_pipe, tiny_data, tmp_path, cfg, progress=False)
    assert results.fidelity is None and results.seen is None
    results = results.to_json()
    assert "fidelity" not in results  # 0 skips the per-stage table
    assert "seen" not in results and not (tmp_path / "eval-samples-seen.png").exists()
    assert "skipping the training-concept prompts" in caplog.text


def test_eval_fidelity_option_is_checked_by_the_command_line(capsys):
    parser = argparse.ArgumentParser()
    add_eval_command(parser.add_subparsers(dest="command"))
    base = ["eval", "--weights", "w", "--data", "d", "--out", "o"]
    assert parser.parse_args(base).fidelity_concepts == EvalConfig().fidelity_concepts == 16
    assert parser.parse_args([*base, "--fidelity-concepts", "0"]).fidelity_concepts == 0
    assert parser.parse_args([*base, "--classifier-images", "2000"]).classifier_images == 2000
    for bad in ("-1", "two"):
        with pytest.raises(SystemExit) as err:
            parser.parse_args([*base, "--fidelity-concepts", bad])
        assert err.value.code == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert "argument --fidelity-concepts" in line and "expected a whole number >= 0" in line
    with pytest.raises(ValueError, match="fidelity_concepts must be >= 0"):
        EvalConfig(fidelity_concepts=-1)


def test_eval_config_rejects_bad_counts():
    with pytest.raises(ValueError, match="num_seen_prompts >= 0"):
        EvalConfig(num_seen_prompts=-1)
    with pytest.raises(ValueError, match="grid_samples >= 1"):
        EvalConfig(grid_samples=0)
