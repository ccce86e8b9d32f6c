"""`sampling_sweep`: every candidate super-resolves the same stage-1 tokens, scored as eval does;
the calibration and completion bench scripts end to end."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from cogview2.evaluation import psnr
from cogview2.evaluation.calibration import (
    Candidate,
    default_candidates,
    sampling_sweep,
    sweep_table,
)
from cogview2.recipes import get_recipe
from cogview2.stage_table import STAGES


def _bench_module(name: str):
    """A script of packages/cogview2/bench, imported."""
    path = Path(__file__).parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _renders(pipe, n: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    side = pipe.image_size
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=gen)


def test_candidates_share_stage_one_and_scores_match_a_direct_call(tiny_pipe):
    prompts = ["red apple", "panda"]
    renders = _renders(tiny_pipe, 2)
    plain = get_recipe("plain")
    dsr_only = Candidate("dsr", plain, STAGES[:2])
    twin = Candidate("dsr again", plain, STAGES[:2])
    full = Candidate("all passes", replace(plain, lopar_passes=(1, 2, 3, 4, 5, 6)), STAGES[:3])
    scores = sampling_sweep(tiny_pipe, prompts, renders, [dsr_only, twin, full], seed=5)
    assert [s.name for s in scores] == ["stage 1, bicubic", "dsr", "dsr again", "all passes"]
    # the same recipe on the same tokens and seed draws the same picture
    assert scores[1].psnr == scores[2].psnr and scores[1].ssim == scores[2].ssim
    assert all(0 <= s.below_bicubic <= 2 and len(s.psnr) == 2 for s in scores)
    # the second concept's DSR picture, made by hand: stage 1 with seed 6, then DSR with seed 6
    first = tiny_pipe(
        prompts[1],
        generator=torch.Generator().manual_seed(6),
        stages=STAGES[:1],
        output_type="pt",
        progress=False,
        score=False,
    )
    sr = tiny_pipe.super_resolve(
        prompts[1],
        first.low_res_tokens,
        style=plain,
        stages=STAGES[:2],
        generator=torch.Generator().manual_seed(6),
    )
    expected = psnr(renders[1:].float() / 255, sr.images.float().clamp(0, 1))[0]
    assert scores[1].psnr[1] == pytest.approx(float(expected), abs=1e-9)
    table = sweep_table(scores)
    assert table.count("\n") == 5 and "| dsr | " in table and "of 2 |" in table


def test_default_candidates_cover_dsr_and_lopar():
    cands = default_candidates("plain")
    assert sum(c.stages == STAGES[:2] for c in cands) == 4
    lopar = [c for c in cands if c.stages == STAGES[:3]]
    assert {c.recipe.lopar_passes for c in lopar} == {(1, 2, 3, 4, 5, 6), (4, 5, 6), (5, 6), (6,)}
    # the LoPAR candidates keep the base recipe's DSR
    assert all(c.recipe.topk_dsr == get_recipe("plain").topk_dsr for c in lopar)


def test_sweep_rejects_bad_input(tiny_pipe):
    cand = default_candidates()[:1]
    with pytest.raises(ValueError, match="at least one candidate"):
        sampling_sweep(tiny_pipe, ["apple"], _renders(tiny_pipe, 1), [])
    with pytest.raises(ValueError, match="one render per prompt"):
        sampling_sweep(tiny_pipe, ["apple", "pear"], _renders(tiny_pipe, 1), cand)
    with pytest.raises(ValueError, match="renders must be"):
        sampling_sweep(tiny_pipe, ["apple"], torch.zeros(1, 3, 8, 8), cand)
    with pytest.raises(ValueError, match="stages must be"):
        Candidate("stage 1", get_recipe("plain"), STAGES[:1])


def test_bench_script_runs_on_a_data_set(tmp_path, monkeypatch, tiny_pipe, emoji_roots):
    """The calibration script end to end, on the tiny pipeline and a tiny emoji data set."""
    from cogview2.data import BuildConfig, build_emoji_dataset

    side = tiny_pipe.image_size, tiny_pipe.low_image_size
    data = tmp_path / "data"
    build_emoji_dataset(
        emoji_roots,
        data,
        BuildConfig(
            styles=("twemoji", "openmoji"),
            sizes=tuple(sorted(side)),
            heldout_fraction=0.5,
            seed=3,
            progress=False,
        ),
    )
    module = _bench_module("calibrate_sampling")
    monkeypatch.setattr(module, "load_pipeline", lambda weights: tiny_pipe)
    out = tmp_path / "sweep.json"
    args = ["--data", str(data), "--concepts", "2", "--groups", "--styles", "--json", str(out)]
    assert module.main(args) == 0
    saved = json.loads(out.read_text())
    assert len(saved["prompts"]) == 2 and len(saved["scores"]) == 1 + len(default_candidates())


def test_completion_bench_runs_on_a_data_set(tmp_path, monkeypatch, tiny_pipe, emoji_roots, capsys):
    """bench/completion_prompt.py end to end on the tiny pipeline and a tiny emoji data set."""
    from cogview2.data import BuildConfig, build_emoji_dataset

    sizes = tuple(sorted({tiny_pipe.image_size, tiny_pipe.low_image_size}))
    data = tmp_path / "data"
    build = BuildConfig(
        styles=("twemoji", "openmoji"), sizes=sizes, heldout_fraction=0.5, seed=3, progress=False
    )
    build_emoji_dataset(emoji_roots, data, build)
    module = _bench_module("completion_prompt")
    monkeypatch.setattr(module, "load_pipeline", lambda weights: tiny_pipe)
    for fill in ("infill", "compose"):
        argv = ["--data", str(data), "--pairs", "2", "--groups", "--styles", "--fill", fill]
        assert module.main([*argv, "--grid", str(tmp_path / f"{fill}.png")]) == 0
        with Image.open(tmp_path / f"{fill}.png") as grid:
            assert grid.size == (2 * 160, 2 * 160)  # two pairs: ground above completion
        out = capsys.readouterr().out
        assert f"fill = {fill}" in out and "closer to the prompt's in" in out
        rows = module.measure(tiny_pipe, data, 2, [], [], fill)
        assert all(0 <= r["prompt_tokens"] <= 1 and 0 <= r["ground_tokens"] <= 1 for r in rows)
