"""The resumable data-parallel loop of the SR recipes, on a toy model (fast, exact)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from coglm_core.distributed import read_sharded_model
from cogview2.training.config import OptimConfig
from cogview2.training.loop import run_loop
from cogview2.training.runtime import global_batch_indices, lr_at, wrap_model

N = 10
CFG = OptimConfig(steps=5, batch_size=4, lr=0.05, warmup_steps=1, checkpoint_every=2, log_every=1)


def toy_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return torch.randn(N, 4, generator=g), torch.randn(N, generator=g)


def toy_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Linear(8, 1))


def train_toy(out: Path, stop_after: int | None = None) -> list[dict[str, float]]:
    x, y = toy_data()
    wrapped = wrap_model(toy_model(), CFG, [])

    def step_fn(indices: list[int], step: int) -> tuple[torch.Tensor, torch.Tensor]:
        pred = wrapped(x[indices])[:, 0]
        return ((pred - y[indices]) ** 2).sum(), torch.tensor(float(len(indices)))

    return run_loop(
        wrapped, N, step_fn, CFG, out, desc="toy", progress=False, stop_after=stop_after
    )


def test_batches_are_seeded_epoch_permutations():
    flat = [i for s in range(5) for i in global_batch_indices(N, 4, 3, s)]
    assert sorted(flat[:N]) == list(range(N)) and sorted(flat[N:20]) == list(range(N))
    assert global_batch_indices(N, 4, 3, 2) == global_batch_indices(N, 4, 3, 2)
    assert flat[:N] != [i for s in range(3) for i in global_batch_indices(N, 4, 4, s)][:N]


def test_lr_schedule():
    assert lr_at(CFG, 0) == pytest.approx(0.05)
    assert lr_at(CFG, CFG.steps) == pytest.approx(0.05 * CFG.min_lr_ratio)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    full = train_toy(tmp_path / "full")
    assert [r["step"] for r in full] == [1, 2, 3, 4, 5]
    first = train_toy(tmp_path / "cut", stop_after=3)  # step 3 is lost: last checkpoint is 2
    assert [r["step"] for r in first] == [1, 2, 3]
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2
    rest = train_toy(tmp_path / "cut")
    assert [r["step"] for r in rest] == [3, 4, 5]
    assert [r["loss"] for r in rest] == pytest.approx([r["loss"] for r in full[2:]], rel=1e-6)
    a = read_sharded_model(tmp_path / "full" / "checkpoint")
    b = read_sharded_model(tmp_path / "cut" / "checkpoint")
    assert a.keys() == b.keys() == {"0.weight", "0.bias", "2.weight", "2.bias"}
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)


def test_checkpoint_of_earlier_versions_resumes(tmp_path):
    """A ``checkpoint/`` of the full-state format (trainable.safetensors + optimizer.pt)."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    from cogview2.training.runtime import CheckpointState, make_optimizer

    full = train_toy(tmp_path / "full")
    train_toy(tmp_path / "cut", stop_after=2)
    model = toy_model()
    optimizer = make_optimizer(model, CFG)
    names = {n for n, _ in model.named_parameters()}
    folder = tmp_path / "cut" / "checkpoint"
    assert CheckpointState(folder).load(model, optimizer, names) == 2
    old = tmp_path / "old" / "checkpoint"
    old.mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, old / "trainable.safetensors"
    )
    opts = StateDictOptions(full_state_dict=True)
    torch.save(get_optimizer_state_dict(model, optimizer, options=opts), old / "optimizer.pt")
    (old / "state.json").write_text(json.dumps({"step": 2}))
    rest = train_toy(tmp_path / "old")
    assert [r["step"] for r in rest] == [3, 4, 5]
    assert [r["loss"] for r in rest] == pytest.approx([r["loss"] for r in full[2:]], rel=1e-6)


TORCHRUN_SCRIPT = """
import sys
from pathlib import Path

import torch
from torch import nn

from coglm_core.distributed import read_sharded_model
from cogview2.training.config import OptimConfig
from cogview2.training.loop import run_loop
from cogview2.training.runtime import init_distributed, wrap_model

torch.set_num_threads(1)
init_distributed()
cfg = OptimConfig(steps=3, batch_size=4, lr=0.05, warmup_steps=1, checkpoint_every=2)
g = torch.Generator().manual_seed(7)
x, y = torch.randn(10, 4, generator=g), torch.randn(10, generator=g)
torch.manual_seed(0)
wrapped = wrap_model(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1)), cfg, [])


def step_fn(indices, step):
    pred = wrapped(x[indices])[:, 0]
    return ((pred - y[indices]) ** 2).sum(), torch.tensor(float(len(indices)))


run_loop(wrapped, 10, step_fn, cfg, Path(sys.argv[1]), desc="toy", progress=False)
"""


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path):
    """DDP under torchrun (gloo): the 2-process update equals the 1-process global-batch one."""
    script = tmp_path / "toy.py"
    script.write_text(TORCHRUN_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    subprocess.run([sys.executable, str(script), str(tmp_path / "one")], check=True, env=env)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            str(tmp_path / "two"),
        ],
        check=True,
        env=env,
        timeout=300,
    )
    a = read_sharded_model(tmp_path / "one" / "checkpoint")
    b = read_sharded_model(tmp_path / "two" / "checkpoint")
    assert a.keys() == b.keys() and len(a) == 4
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
