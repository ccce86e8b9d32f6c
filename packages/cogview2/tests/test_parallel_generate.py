"""`generate --prompts-file` through `cogview2.batch_generation`: 1 and 2 processes (torchrun,
gloo on CPU) write byte-identical PNGs; the manifest, resume after a kill, refusal of other
settings, and stage-1 candidates in this mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cogview2.batch_generation import (
    MANIFEST_FILE,
    BatchSettings,
    Session,
    job_seed,
    plan_jobs,
    read_manifest,
    run_batch,
    weights_identity,
)
from cogview2.cli import main

PROMPTS = ["a red apple", "", "熊猫", "a small cat"]
ONE = Session(0, 1, 0, 1)


@pytest.fixture(scope="module")
def weights(tiny_pipe, tmp_path_factory) -> Path:
    """The tiny pipeline as a weights folder (every process loads the same weights)."""
    return tiny_pipe.save_pretrained(tmp_path_factory.mktemp("tiny") / "weights")


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    return path


def _argv(prompts: Path, weights: Path, out: Path, *extra: str) -> list[str]:
    return [
        "generate", "--prompts-file", str(prompts), "-n", "2", "--seed", "5", "-o", str(out),
        "--weights", str(weights), "--threads", "1", "--quiet", *extra,
    ]  # fmt: skip


def _generate(nproc: int, argv: list[str]) -> None:
    """``python -m cogview2 …`` in ``nproc`` processes (torchrun for 2)."""
    launcher = [sys.executable, "-m", "cogview2"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc-per-node={nproc}", "-m", "cogview2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, *argv], env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def _records(folder: Path) -> list[dict]:
    lines = (folder / MANIFEST_FILE).read_text(encoding="utf-8").splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in ("rank", "seconds")} for x in lines]


@pytest.mark.parametrize("extra", [(), ("--candidates", "3", "--stages", "coarse,dsr")])
def test_one_and_two_processes_write_identical_pngs(prompts_file, weights, tmp_path, extra):
    one, two = tmp_path / "one", tmp_path / "two"
    _generate(1, _argv(prompts_file, weights, one, *extra))
    _generate(2, _argv(prompts_file, weights, two, *extra))
    pngs = _pngs(one)
    assert len(pngs) == 3 * 3  # 3 prompts (the empty line is skipped) × (2 images + grid)
    assert pngs == _pngs(two)
    assert _records(one) == _records(two)
    records = [json.loads(x) for x in (two / MANIFEST_FILE).read_text().splitlines()]
    assert {r["rank"] for r in records} == {0, 1}
    assert [(r["prompt_index"], r["image_index"]) for r in records] == [
        (p, i) for p in range(3) for i in range(2)
    ]
    first = records[0]
    assert first["prompt"] == "a red apple" and first["file"] == "000-a-red-apple-0.png"
    assert isinstance(first["score"], float)
    assert set(first["seconds"]) >= {"coarse", "dsr", "other"}
    if extra:  # a prompt's images are chosen together: best caption score first
        assert first["job_images"] == 2 and records[0]["score"] >= records[1]["score"]
        assert first["job_seed"] == job_seed(5, 0)
    else:
        assert first["job_images"] == 1 and first["job_seed"] == job_seed(5, 0, 0)
    assert not list(two.glob("manifest.rank*.jsonl"))  # merged


class _Killed(Exception):
    pass


def test_rerun_redoes_only_what_a_kill_lost(tiny_pipe, tmp_path):
    prompts = ["a red apple", "熊猫", "a small cat"]
    settings = BatchSettings(num_images=2, seed=1, weights=weights_identity(None))
    ref = tmp_path / "ref"
    run_batch(lambda: tiny_pipe, prompts, ref, settings, ONE, log=None)
    reference = _pngs(ref)

    class DiesOnThirdCall:
        calls = 0

        def __getattr__(self, name):
            return getattr(tiny_pipe, name)

        def __call__(self, *args, **kwargs):
            self.calls += 1
            if self.calls == 3:
                raise _Killed
            return tiny_pipe(*args, **kwargs)

    out = tmp_path / "out"
    with pytest.raises(_Killed):
        run_batch(DiesOnThirdCall, prompts, out, settings, ONE, log=None)
    assert len(read_manifest(out)) == 2 and not (out / MANIFEST_FILE).exists()
    part = next(out.glob("manifest.rank*.jsonl"))
    with open(part, "a", encoding="utf-8") as f:
        f.write('{"prompt_index": 1, "image_in')  # a line cut short by the kill
    (out / "000-a-red-apple-1.png").unlink()  # a PNG lost after its line was written

    result = run_batch(lambda: tiny_pipe, prompts, out, settings, ONE, log=None)
    assert (result.skipped, result.written) == (1, 5)
    assert _pngs(out) == reference
    assert _records(out) == _records(ref)

    again = run_batch(lambda: tiny_pipe, prompts, out, settings, ONE, log=None)
    assert (again.skipped, again.written) == (6, 0)


def test_other_settings_in_the_same_folder_are_refused(prompts_file, weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_argv(prompts_file, weights, out, "--stages", "coarse")) == 0
    assert main(_argv(prompts_file, weights, out, "--stages", "coarse", "--seed", "6")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "holds a run with other settings" in err and "seed: 5 there, 6 now" in err
    assert main(_argv(prompts_file, weights, out, "--stages", "coarse,dsr")) == 2
    assert "stages: ['coarse'] there, ['coarse', 'dsr'] now" in capsys.readouterr().err


def test_a_prompt_too_long_fails_before_any_image(tiny_pipe, tmp_path):
    prompts = ["a red apple", " ".join(["panda"] * 200)]
    settings = BatchSettings(num_images=1, seed=0, weights=weights_identity(None))
    with pytest.raises(ValueError, match=r"1 of 2 prompts cannot be drawn, e\.g\. prompt 1"):
        run_batch(lambda: tiny_pipe, prompts, tmp_path / "out", settings, ONE, log=None)
    assert not list((tmp_path / "out").glob("*.png"))


def test_jobs_and_seeds():
    plain = plan_jobs(3, BatchSettings(num_images=2, seed=0))
    assert [(j.prompt_index, j.image_indices) for j in plain] == [
        (p, (i,)) for p in range(3) for i in range(2)
    ]
    assert len({j.seed for j in plain}) == 6 and all(0 <= j.seed < 2**63 for j in plain)
    coupled = plan_jobs(2, BatchSettings(num_images=2, seed=0, candidates=4))
    assert [j.image_indices for j in coupled] == [(0, 1), (0, 1)]
    assert job_seed(0, 1, 0) != job_seed(1, 0, 0) != job_seed(0, 0, 1)
    with pytest.raises(ValueError, match="--candidates"):
        BatchSettings(num_images=3, seed=0, candidates=2)
    with pytest.raises(ValueError, match="-n/--num-images"):
        BatchSettings(num_images=0, seed=0)
