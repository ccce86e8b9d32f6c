import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from coglm_core import CogLM, CogLMConfig, TokenDataset, TrainConfig, train, write_token_file
from coglm_core.distributed import read_sharded_model

CONFIG_OVERRIDE = '{"hidden_dropout": 0.0, "attention_dropout": 0.0}'


def _data(path: Path, n: int = 12) -> Path:
    c = CogLMConfig.tiny()
    g = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        t = torch.randint(70, 120, (32,), generator=g)
        if i % 3:
            t[4] = c.pad_id
            t[8:16] = c.pad_id
            t[-16:] = torch.randint(0, 64, (16,), generator=g)
        rows.append(t)
    return write_token_file(path, torch.stack(rows))


def _model(seed: int = 5) -> CogLM:
    torch.manual_seed(seed)
    return CogLM(CogLMConfig.tiny(hidden_dropout=0.0, attention_dropout=0.0), dtype=torch.float64)


def test_loss_decreases_and_resume_is_exact(tmp_path) -> None:
    data = TokenDataset(_data(tmp_path / "d.bin"), 32)
    cfg = TrainConfig(
        global_batch_size=4, max_steps=4, lr=3e-3, warmup_steps=1, checkpoint_every=2, seed=3
    )
    straight = _model()
    hist = train(straight, data, cfg, tmp_path / "a", progress=False)
    assert [h["step"] for h in hist] == [1, 2, 3, 4] and all("image_loss" in h for h in hist)
    # stop after 2 steps, then resume in a fresh model
    first = _model()
    train(
        first, data, TrainConfig(**{**cfg.__dict__, "max_steps": 2}), tmp_path / "b", progress=False
    )
    resumed = _model(seed=99)
    rest = train(resumed, data, cfg, tmp_path / "b", progress=False)
    assert [h["step"] for h in rest] == [3, 4]
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    assert (tmp_path / "b" / "latest").read_text().strip() == "step-00000004"
    assert sorted(p.name for p in (tmp_path / "b").glob("step-*")) == [
        "step-00000002",
        "step-00000004",
    ]
    written = tmp_path / "b" / "step-00000004" / "state.json"
    assert written.stat().st_mode & 0o777 == 0o644  # readable by the group that serves it
    saved = read_sharded_model(tmp_path / "b" / "step-00000004")
    for name, tensor in resumed.state_dict().items():
        assert torch.equal(saved[name], tensor), name


def test_one_step_lowers_the_loss_on_the_same_batch(tmp_path) -> None:
    data = TokenDataset(_data(tmp_path / "d.bin", n=4), 32)
    cfg = TrainConfig(
        global_batch_size=4, max_steps=8, lr=1e-2, warmup_steps=1, checkpoint_every=100
    )
    hist = train(_model(), data, cfg, tmp_path / "r", progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]


def _run_cli(launcher: list[str], data: Path, out: Path) -> dict[str, torch.Tensor]:
    args = [
        "-m",
        "coglm_core.cli",
        "--data",
        str(data),
        "--config",
        "tiny",
        "--config-override",
        CONFIG_OVERRIDE,
        "--out",
        str(out),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--lr",
        "1e-2",
        "--warmup",
        "1",
        "--dtype",
        "float64",
        "--optimizer",
        "sgd",
        "--no-progress",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*launcher, *args], check=True, env=env, timeout=300, capture_output=True)
    return read_sharded_model(out / "step-00000002")


def test_two_process_torchrun_equals_single_process(tmp_path) -> None:
    pytest.importorskip("torch.distributed.run")
    data = _data(tmp_path / "d.bin")
    single = _run_cli([sys.executable], data, tmp_path / "single")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    try:
        double = _run_cli(torchrun, data, tmp_path / "ddp")
    except subprocess.CalledProcessError as err:
        raise AssertionError(err.stderr.decode()[-3000:]) from None
    assert single.keys() == double.keys()
    for key in single:
        torch.testing.assert_close(double[key], single[key], rtol=1e-10, atol=1e-13, msg=key)
    torch.manual_seed(1234)  # the CLI's default seed: the initial weights
    init = CogLM(CogLMConfig.tiny(), dtype=torch.float64).state_dict()
    assert not torch.equal(
        init["transformer.layers.0.mlp.dense_h_to_4h.weight"],
        single["transformer.layers.0.mlp.dense_h_to_4h.weight"],
    )


def test_caption_only_from_forces_the_caption_task(tmp_path) -> None:
    """Indices >= caption_only_from take the caption task with the caption's loss only; the
    others are untouched."""
    from coglm_core.training import make_batch

    data = TokenDataset(_data(tmp_path / "d.bin"), 32)
    config = CogLMConfig.tiny()
    base = TrainConfig(global_batch_size=4, caption_ratio=0.0, seed=3)
    only = TrainConfig(**{**base.__dict__, "caption_only_from": 4})
    forced = TrainConfig(**{**base.__dict__, "caption_ratio": 0.999999})
    indices = [1, 2, 4, 5]  # text-image samples (i % 3 != 0)
    for step in range(3):
        got = make_batch(data, indices, config, only, step)
        plain = make_batch(data, indices, config, base, step)
        caption = make_batch(data, indices, config, forced, step)
        tensors = [k for k, v in got.items() if isinstance(v, torch.Tensor)]
        for key in tensors:  # rows 0-1 as without it, rows 2-3 captioned
            torch.testing.assert_close(got[key][:2], plain[key][:2], rtol=0, atol=0)
            if key != "loss_mask":
                torch.testing.assert_close(got[key][2:], caption[key][2:], rtol=0, atol=0)
        assert any(not torch.equal(plain[k][2:], caption[k][2:]) for k in tensors)
        # the caption's loss only: no image id is a target of rows 2-3
        text = caption["labels"][2:] >= config.num_image_tokens
        assert torch.equal(got["loss_mask"][2:], caption["loss_mask"][2:] & text)
        assert bool(got["loss_mask"][2:].any()) and bool((caption["loss_mask"][2:] & ~text).any())
    with pytest.raises(ValueError, match="caption_only_from must be None or an index >= 0"):
        TrainConfig(caption_only_from=-1)
