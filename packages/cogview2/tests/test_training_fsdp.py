"""The coglm, dsr and itersr recipes with FSDP2 in 2 gloo processes (torchrun) against one
process, and their checkpoints resumed on another world size (2 → 1, 1 → 2).

Tolerance: the recipes train in float32 (CogLM without dropout here, so that every rank draws
the same masks). Two processes see the same global batches as one and differ only in the
summation order of the gradient (half-batch sums reduced by gloo vs one sum, and kernels that
round differently for a batch of 1 and of 2) and of the clipping norm: ~1e-7 relative per step,
which AdamW's second step enlarges where consecutive gradients nearly cancel in its first
moment. DSR and ITERSR train on the one-process CogLM in both cases. Measured (2 gloo
processes vs 1, this machine): losses agree to 1.2e-7 relative; final weights to 1.4e-7 (CogLM),
0 (DSR) and 2.1e-6 (ITERSR, an MLP weight of magnitude 0.04) absolute; the checkpoints resumed
on the other world size give DSR weights equal to the bit. ``rtol=1e-4, atol=1e-5`` leaves 5x
headroom at the worst element (ITERSR), while a wrong update moves weights by ~lr = 3e-4 per
step (a lost or repeated step, an unaveraged gradient, a shard loaded into the wrong place).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cogview2.data import BuildConfig, build_emoji_dataset
from cogview2.training import TrainingConfig, load_training_config, run_recipe
from cogview2.training.super_resolution import dsr_recipe

PACKAGE = Path(__file__).parents[1]
WORKER = Path(__file__).with_name("recipe_worker.py")
RTOL, ATOL = 1e-4, 1e-5
SHARED_STAGES = ("text_tokenizer", "vqvae", "tokenize")


def _config(tmp: Path) -> TrainingConfig:
    cfg = load_training_config(PACKAGE / "configs" / "tiny-test.toml")
    return dataclasses.replace(
        cfg,
        workdir=str(tmp / "one"),
        data=dataclasses.replace(cfg.data, root=str(tmp / "data")),
        coglm=dataclasses.replace(cfg.coglm, dropout=0.0),
        assemble=dataclasses.replace(cfg.assemble, out=str(tmp / "weights")),
    )


def _sharing(cfg: TrainingConfig, workdir: Path, stages: tuple[str, ...]) -> TrainingConfig:
    """``cfg`` in ``workdir``, whose ``stages`` are links to ``cfg``'s."""
    workdir.mkdir()
    for stage in stages:
        (workdir / stage).symlink_to(cfg.stage_dirs[stage])
    return dataclasses.replace(cfg, workdir=str(workdir))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, emoji_roots: dict[str, Path]) -> Path:
    """One-process runs of every recipe, one torchrun launch (2 processes, FSDP2) and a resume."""
    tmp = tmp_path_factory.mktemp("fsdp")
    build = BuildConfig(
        styles=("twemoji", "openmoji"),
        sizes=(32, 96),
        heldout_fraction=0.3,
        seed=0,
        samples_per_shard=4,
        progress=False,
    )
    build_emoji_dataset(emoji_roots, tmp / "data", build)
    one = _config(tmp)
    for recipe in ("text-tokenizer", "vqvae", "tokenize", "coglm", "dsr", "itersr"):
        run_recipe(recipe, one, progress=False)
    _sharing(one, tmp / "two", SHARED_STAGES)  # CogLM by 2 processes
    _sharing(one, tmp / "two-sr", (*SHARED_STAGES, "coglm"))  # DSR, ITERSR on the same CogLM
    one_to_two = _sharing(one, tmp / "one-to-two", (*SHARED_STAGES, "coglm"))
    dsr_recipe(one_to_two, progress=False, stop_after=2)  # checkpoint of step 2 by 1 process
    two_to_one = _sharing(one, tmp / "two-to-one", (*SHARED_STAGES, "coglm"))
    config = tmp / "config.json"
    config.write_text(json.dumps(one.to_dict()))
    jobs = [
        {"workdir": str(tmp / "two"), "recipe": "coglm"},
        {"workdir": str(tmp / "two-sr"), "recipe": "dsr"},
        {"workdir": str(tmp / "two-sr"), "recipe": "itersr"},
        {"workdir": str(tmp / "one-to-two"), "recipe": "dsr"},
        {"workdir": str(tmp / "two-to-one"), "recipe": "dsr", "stop_after": 2},
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*cmd, str(WORKER), str(config), json.dumps(jobs)],
        env=env,
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    state = json.loads((tmp / "two-to-one" / "dsr" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2 and state["world_size"] == 2
    dsr_recipe(two_to_one, progress=False)  # 2 → 1
    return tmp


def _log(stage_dir: Path) -> list[tuple[int, float]]:
    lines = (stage_dir / "log.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


def _assert_close_files(got: Path, want: Path) -> None:
    a, b = load_file(got), load_file(want)
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=RTOL, atol=ATOL, msg=f"{got}: {key}")


def _assert_same_stage(got: Path, want: Path) -> None:
    g, w = _log(got), _log(want)
    assert [s for s, _ in g] == [s for s, _ in w]
    torch.testing.assert_close([x for _, x in g], [x for _, x in w], rtol=RTOL, atol=ATOL)
    for file in sorted(want.glob("final/**/*.safetensors")):
        _assert_close_files(got / file.relative_to(want), file)


def test_fsdp_recipes_follow_the_one_process_runs(runs: Path) -> None:
    _assert_same_stage(runs / "two" / "coglm", runs / "one" / "coglm")
    for stage in ("dsr", "itersr"):
        _assert_same_stage(runs / "two-sr" / stage, runs / "one" / stage)
    assert (runs / "two-sr" / "itersr" / "final" / "base" / "model.safetensors").is_file()
    state = json.loads((runs / "two-sr" / "dsr" / "checkpoint" / "state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 3
    coglm = json.loads((runs / "two" / "coglm" / "step-00000002" / "state.json").read_text())
    assert coglm["train_config"]["fsdp"] is True and coglm["world_size"] == 2


def test_recipe_checkpoints_resume_on_another_world_size(runs: Path) -> None:
    want = runs / "one" / "dsr"
    for workdir in ("one-to-two", "two-to-one"):
        got = runs / workdir / "dsr"
        assert [s for s, _ in _log(got)] == [2, 3]
        _assert_close_files(got / "final" / "mixins.safetensors", want / "final/mixins.safetensors")
        torch.testing.assert_close(_log(got)[-1][1], _log(want)[-1][1], rtol=RTOL, atol=ATOL)


def test_vqvae_refuses_fsdp() -> None:
    from cogview2.training.config import OptimConfig, VQVAERecipe

    with pytest.raises(ValueError, match=r"\[vqvae\] fsdp"):
        VQVAERecipe(fsdp=True)
    with pytest.raises(ValueError, match="fsdp_mixed_precision must be one of"):
        OptimConfig(fsdp_mixed_precision="fp8")
