"""DDP and FSDP2 on CPU (gloo, 2 processes under torchrun) against one process, sharded
checkpoints across world sizes, and a SIGKILLed run that resumes.

Tolerance: every run trains in float64 (dist_worker.py). Runs with 1 or 2 processes see the
same global batches and compute the same updates; they differ only in the summation order of
the gradient (one sum over the batch vs two half-batch sums reduced by gloo) and of the global
gradient norm, a relative error of ~1e-16 per step that AdamW can amplify where a gradient is
tiny against sqrt(v). Measured after four steps (2 gloo processes vs 1): losses equal to 2e-16
relative, weights to 1.0e-14 (DDP) and 1.4e-14 (FSDP2) absolute, so ``rtol=1e-9, atol=1e-12``
leaves ~70x headroom; a wrong update (a gradient not averaged, a shard loaded into the wrong
slice, a step skipped or repeated) moves the weights by ~lr = 3e-3.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from coglm_core import TrainConfig, save_safetensors, train
from coglm_core.distributed import (
    load_sharded_checkpoint,
    mixed_precision_dtype,
    read_sharded_model,
    wrap_for_training,
)
from coglm_core.training import make_optimizer

WORKER = Path(__file__).with_name("dist_worker.py")
RTOL, ATOL = 1e-9, 1e-12


def _worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dist_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W = _worker()


def _torchrun(data: Path, jobs: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += [str(WORKER), str(data), json.dumps(jobs)]
    return subprocess.run(cmd, env=env, timeout=300, capture_output=True, text=True)


def _losses(out: Path) -> list[tuple[int, float]]:
    lines = (out / "log.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines)]


def _assert_same_run(got: Path, want: Path) -> None:
    g, w = _losses(got), _losses(want)
    assert [s for s, _ in g] == [s for s, _ in w] == [1, 2, 3, 4]
    torch.testing.assert_close([x for _, x in g], [x for _, x in w], rtol=RTOL, atol=ATOL)
    a = read_sharded_model(got / "step-00000004")
    b = read_sharded_model(want / "step-00000004")
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:
        assert a[key].dtype == torch.float64
        torch.testing.assert_close(a[key], b[key], rtol=RTOL, atol=ATOL, msg=key)


def _copy_step(src: Path, step: int, dst: Path) -> None:
    name = f"step-{step:08d}"
    shutil.copytree(src / name, dst / name)
    (dst / "latest").write_text(name + "\n")
    lines = (src / "log.jsonl").read_text().splitlines()[:step]
    (dst / "log.jsonl").write_text("".join(x + "\n" for x in lines))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every run of this module (two torchrun launches of 2 processes, three in-process runs)."""
    tmp = tmp_path_factory.mktemp("dist")
    data = tmp / "tokens.bin"
    W.make_data(data)
    W.run(data, tmp / "single")  # the reference: one process, uninterrupted
    _copy_step(tmp / "single", 2, tmp / "one-to-two")
    killed = _torchrun(data, [{"out": str(tmp / "killed"), "mode": "fsdp", "kill_at_step": 3}])
    assert killed.returncode != 0, killed.stdout[-2000:] + killed.stderr[-2000:]
    (tmp / "killed-marker").write_text(killed.stderr[-4000:])
    shutil.copytree(tmp / "killed", tmp / "killed-resumed-by-2")
    shutil.copytree(tmp / "killed", tmp / "killed-resumed-by-1")
    jobs = [
        {"out": str(tmp / "ddp"), "mode": "ddp"},
        {"out": str(tmp / "fsdp"), "mode": "fsdp"},
        {"out": str(tmp / "one-to-two"), "mode": "fsdp"},
        {"out": str(tmp / "killed-resumed-by-2"), "mode": "fsdp"},
    ]
    done = _torchrun(data, jobs)
    assert done.returncode == 0, done.stderr[-4000:]
    W.run(data, tmp / "killed-resumed-by-1")  # 2 → 1
    return tmp


def test_ddp_and_fsdp_follow_the_one_process_trajectory(runs: Path) -> None:
    _assert_same_run(runs / "ddp", runs / "single")
    _assert_same_run(runs / "fsdp", runs / "single")
    state = json.loads((runs / "fsdp" / "step-00000004" / "state.json").read_text())
    assert state["format"] == "torch.distributed.checkpoint" and state["world_size"] == 2
    assert state["train_config"]["fsdp"] is True
    # FSDP2 writes one shard file per process, DDP's replicated tensors are written once
    assert len(list((runs / "fsdp" / "step-00000004").glob("*.distcp"))) == 2


def test_sigkilled_fsdp_run_resumes_from_its_last_checkpoint(runs: Path) -> None:
    killed = runs / "killed"
    assert (killed / "latest").read_text().strip() == "step-00000002"
    assert sorted(p.name for p in killed.iterdir() if p.name.startswith("step-")) == [
        "step-00000002"
    ]
    assert [s for s, _ in _losses(killed)] == [1, 2]
    _assert_same_run(runs / "killed-resumed-by-2", runs / "single")


def test_sharded_checkpoints_resume_on_another_world_size(runs: Path) -> None:
    _assert_same_run(runs / "killed-resumed-by-1", runs / "single")  # written by 2, resumed by 1
    _assert_same_run(runs / "one-to-two", runs / "single")  # written by 1, resumed by 2 (FSDP2)


def test_full_state_checkpoints_of_earlier_versions_still_resume(runs: Path, tmp_path) -> None:
    """A step folder of the previous format (model.safetensors + optimizer.pt) resumes."""
    model = W.make_model(seed=99)
    optimizer = make_optimizer(model, W.CFG)
    load_sharded_checkpoint(runs / "single" / "step-00000002", model, optimizer)
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
    )

    old = tmp_path / "old"
    folder = old / "step-00000002"
    folder.mkdir(parents=True)
    save_safetensors(model.state_dict(), folder / "model.safetensors")
    opts = StateDictOptions(full_state_dict=True)
    torch.save(get_optimizer_state_dict(model, optimizer, options=opts), folder / "optimizer.pt")
    (folder / "state.json").write_text(json.dumps({"step": 2}))
    (old / "latest").write_text("step-00000002\n")
    shutil.copy(runs / "single" / "log.jsonl", old / "log.jsonl")
    (old / "log.jsonl").write_text(
        "".join(x + "\n" for x in (runs / "single" / "log.jsonl").read_text().splitlines()[:2])
    )
    W.run(runs / "tokens.bin", old)
    _assert_same_run(old, runs / "single")


def test_checkpoint_metadata_with_foreign_code_is_refused(runs: Path, tmp_path) -> None:
    folder = tmp_path / "evil"
    shutil.copytree(runs / "single" / "step-00000004", folder)

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    (folder / ".metadata").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        read_sharded_model(folder)
    model = W.make_model()
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_sharded_checkpoint(folder, model, make_optimizer(model, W.CFG))


def test_mixed_precision_choice() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert mixed_precision_dtype("auto", cpu, "bfloat16") is None
    assert mixed_precision_dtype("auto", cuda, "bfloat16") is torch.bfloat16
    assert mixed_precision_dtype("auto", cuda, None) is None
    assert mixed_precision_dtype("off", cuda, "bfloat16") is None
    assert mixed_precision_dtype("bfloat16", cpu, None) is torch.bfloat16
    with pytest.raises(ValueError, match="allowed"):
        mixed_precision_dtype("fp8", cpu, None)
    with pytest.raises(ValueError, match="fsdp_mixed_precision"):
        TrainConfig(fsdp_mixed_precision="half")
    model = W.make_model()
    assert wrap_for_training(model, model.transformer.layers, fsdp=True) is model  # 1 process


def test_one_process_run_with_fsdp_true_trains(tmp_path) -> None:
    """``fsdp=True`` in one process trains the plain model (nothing to shard)."""
    data = W.make_data(tmp_path / "d.bin")
    cfg = TrainConfig(global_batch_size=4, max_steps=1, lr=1e-3, warmup_steps=1, fsdp=True)
    hist = train(W.make_model(), data, cfg, tmp_path / "run", progress=False)
    assert len(hist) == 1 and hist[0]["loss"] > 0
