"""Memory plans: offloaded stages give the tokens of a resident pipeline, the prediction counts
the loaded weights exactly and matches a measured peak, budgets choose a plan or fail fast."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cogview2 import CogView2Pipeline
from cogview2.memory import (
    MemoryPlan,
    choose_plan,
    estimate_memory,
    parse_size,
    weight_bytes,
)
from cogview2.tiny import build_tiny_pipeline

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # the memory probe is a measuring tool in bench/, not library code


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A saved tiny pipeline whose DSR shares CogLM's base and whose ITERSR has its own."""
    path = tmp_path_factory.mktemp("pipe") / "weights"
    build_tiny_pipeline(seed=3).save_pretrained(path)
    return path


def _tokens(pipe: CogView2Pipeline, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    out = pipe(
        "red apple",
        num_images=3,
        style="none",
        generator=torch.Generator().manual_seed(seed),
        output_type="tokens",
        progress=False,
    )
    return out.tokens, out.scores


def _tensors(pipe: CogView2Pipeline) -> dict[int, torch.Tensor]:
    found = {}
    for model in (pipe.coglm, pipe.dsr, pipe.itersr):
        for t in (*model.parameters(), *model.buffers()):
            found[id(t)] = t
    return found


@pytest.mark.parametrize("int8", [False, True])
def test_offloaded_stages_give_the_resident_tokens(folder, int8):
    resident = CogView2Pipeline.from_pretrained(
        folder, memory_plan=MemoryPlan("resident", int8=int8)
    )
    expected = _tokens(resident)
    for placement in ("model_offload", "disk_offload"):
        pipe = CogView2Pipeline.from_pretrained(
            folder, memory_plan=MemoryPlan(placement, int8=int8)
        )
        tokens, scores = _tokens(pipe)
        assert torch.equal(tokens, expected[0]), placement
        torch.testing.assert_close(scores, expected[1], rtol=0, atol=0)
        assert pipe.memory_plan.placement == placement


def test_disk_offload_holds_one_stage_at_a_time(folder):
    pipe = CogView2Pipeline.from_pretrained(folder, memory_plan=MemoryPlan("disk_offload"))
    assert all(t.is_meta for t in _tensors(pipe).values())  # nothing read before a stage runs
    loaded = []
    for stages in (("coarse",), ("coarse", "dsr"), ("coarse", "dsr", "itersr")):
        pipe("red apple", style="none", stages=stages, output_type="tokens", progress=False)
        loaded.append(sorted(pipe._placer.loaded))
    # DSR keeps the base it shares with stage 1; ITERSR has its own, so CogLM is dropped.
    assert loaded == [["coglm"], ["coglm", "dsr.mixins"], ["itersr.base", "itersr.mixins"]]
    assert all(t.is_meta for t in pipe.coglm.parameters())
    assert pipe.caption(torch.rand(3, 32, 32), num_captions=1)  # brings stage 1 back
    assert sorted(pipe._placer.loaded) == ["coglm"]


@pytest.mark.parametrize("dtype, int8", [(None, False), (torch.bfloat16, False), (None, True)])
def test_predicted_weights_equal_the_loaded_bytes(folder, dtype, int8):
    pipe = CogView2Pipeline.from_pretrained(folder, memory_plan=MemoryPlan("resident", dtype, int8))
    loaded = sum(t.numel() * t.element_size() for t in _tensors(pipe).values())
    models = {"coglm": pipe.coglm, "dsr": pipe.dsr, "itersr": pipe.itersr}
    estimate = estimate_memory(models, MemoryPlan("resident", dtype, int8))
    assert estimate.all_weight_bytes == loaded
    # the same prediction from the float32 structure before loading (what choose_plan sees)
    fresh = build_tiny_pipeline(seed=3)
    unquantised = {"coglm": fresh.coglm, "dsr": fresh.dsr, "itersr": fresh.itersr}
    assert weight_bytes(unquantised.values(), dtype, int8) == loaded


def test_budget_picks_the_fastest_plan_that_fits(folder):
    pipe = build_tiny_pipeline(seed=3)
    models = {"coglm": pipe.coglm, "dsr": pipe.dsr, "itersr": pipe.itersr}
    resident = estimate_memory(models, MemoryPlan("resident")).peak_bytes
    offload = estimate_memory(models, MemoryPlan("disk_offload")).peak_bytes
    assert offload < resident
    assert choose_plan(models, resident)[0] == MemoryPlan("resident")
    assert choose_plan(models, resident - 1)[0].placement == "disk_offload"
    assert choose_plan(models, offload)[0] == MemoryPlan("disk_offload")
    cuda = choose_plan(models, resident - 1, device="cuda")[0]
    assert cuda.placement == "model_offload"  # an accelerator keeps the models in CPU memory
    loaded = CogView2Pipeline.from_pretrained(folder, max_memory=offload)
    assert loaded.memory_plan == MemoryPlan("disk_offload")


def test_too_small_a_budget_fails_fast_naming_the_smallest(folder):
    with pytest.raises(ValueError, match="too small") as err:
        CogView2Pipeline.from_pretrained(folder, max_memory="1kB")
    smallest = re.search(r"needs ([0-9.]+ [MG]B)", str(err.value)).group(1)
    assert CogView2Pipeline.from_pretrained(folder, max_memory=smallest).memory_plan.int8


@pytest.mark.parametrize(
    "text, value",
    [("16GB", 16 * 10**9), ("14 GiB", 14 * 2**30), ("800mb", 8 * 10**8), ("1.5G", 1.5e9), (7, 7)],
)
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "16 apples", "-1GB", "0", True])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="memory size"):
        parse_size(text)


def test_offloaded_pipeline_refuses_to_move_or_save(folder, tmp_path):
    pipe = CogView2Pipeline.from_pretrained(folder, memory_plan=MemoryPlan("disk_offload"))
    with pytest.raises(ValueError, match="offloads"):
        pipe.to("cpu")
    with pytest.raises(ValueError, match="cannot save"):
        pipe.save_pretrained(tmp_path / "x")


def test_enable_model_cpu_offload_keeps_tokens():
    pipe = build_tiny_pipeline(seed=4)
    expected = _tokens(pipe)
    pipe.enable_model_cpu_offload("cpu")
    assert pipe.memory_plan.placement == "model_offload"
    tokens, _ = _tokens(pipe)
    assert torch.equal(tokens, expected[0])


def test_peak_tensor_bytes_is_the_peak_of_live_tensors():
    from memory_probe import peak_tensor_bytes, probe

    before = torch.rand(3_000_000)  # allocated outside the block: not counted
    with peak_tensor_bytes() as peak:
        a = torch.rand(1_000_000)  # 4 MB live
        b = torch.rand(500_000)  # 6 MB
        del a  # 2 MB
        c = torch.rand(2_000_000)  # 10 MB: the peak
        del b, c
    assert peak["tensors"] == 10_000_000 and before.numel() == 3_000_000
    with pytest.raises(ValueError, match="measure must be"):
        probe("small", "dsr", dtype=torch.float32, measure="vsz")


@pytest.mark.parametrize("stage", ["coarse", "dsr", "itersr"])
def test_predicted_peak_matches_the_measured_one_on_a_medium_model(stage):
    """``memory_probe`` in a fresh process: CogLM 8 layers × 768 (173 M parameters with the
    release's 150k vocabulary), float32, the release's 20×20 → 60×60 layout, batch 1. The
    measurement is the peak of live tensor bytes, which does not depend on what the C
    allocator keeps (resident memory did, and varied by 10 % between runs)."""
    out = subprocess.run(
        [sys.executable, str(BENCH / "memory_probe.py"), "--preset", "medium", "--stage", stage,
         "--dtype", "float32"],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert 0.9 <= row["ratio"] <= 1.1, row


def _cli(*argv: str) -> int:
    import argparse

    from cogview2._commands import add_pipeline_commands

    parser = argparse.ArgumentParser(prog="cogview2")
    add_pipeline_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_plan_of_the_6b_preset_allocates_no_weights_and_keeps_its_numbers(capsys):
    """`cogview2 info --plan --preset 6b` is arithmetic on meta-device models: no weight is
    allocated (DSR's 1.8 G-parameter attention_plus used to be made on the CPU first: 7.3 GB),
    and the predictions are the ones it printed before."""
    from memory_probe import peak_tensor_bytes

    from cogview2.models.presets import build_models

    with peak_tensor_bytes() as peak:
        models = build_models("6b")
    assert peak["tensors"] < 64 * 2**20, peak
    assert all(p.is_meta for m in models.values() for p in m.parameters())
    assert _cli("info", "--plan", "--preset", "6b") == 0
    out = capsys.readouterr().out
    for row in (
        "resident, stored dtype: peak 55.43 GB",
        "| coarse | 23.61 GB | 601.9 MB | 55.16 GB |",
        "| dsr | 30.91 GB | 864.0 MB | 31.77 GB |",
        "disk_offload, stored dtype, int8 linears: peak 10.34 GB",
        "| itersr | 7.36 GB | 1.17 GB | 17.69 GB |",
    ):
        assert row in out, row


def test_cli_plans_and_generates_within_a_budget(folder, tmp_path, capsys):
    assert _cli("info", "--plan", "--weights", str(folder), "--max-memory", "1GB") == 0
    text = capsys.readouterr().out
    assert "| dsr |" in text and "disk_offload" in text and "--max-memory 1GB: resident" in text
    assert _cli("info", "--plan", "--preset", "6b", "--dtype", "bf16", "--max-memory", "16GB") == 0
    assert "--max-memory 16GB: resident, bfloat16, int8 linears" in capsys.readouterr().out
    pipe = CogView2Pipeline.from_pretrained(folder)
    smallest = estimate_memory(
        {"coglm": pipe.coglm, "dsr": pipe.dsr, "itersr": pipe.itersr},
        MemoryPlan("disk_offload"),
        num_images=2,
    ).peak_bytes
    out = tmp_path / "out"
    args = ["generate", "red apple", "-n", "2", "--seed", "0", "--weights", str(folder), "-o",
            str(out), "--quiet", "--style", "none"]  # fmt: skip
    assert _cli(*args, "--max-memory", str(smallest)) == 0
    assert len(list(out.glob("*-0.png"))) == 1
    with pytest.raises(ValueError, match="too small"):
        _cli(*args, "--max-memory", "10kB")
    with pytest.raises(ValueError, match="either --max-memory"):
        _cli(*args, "--max-memory", "1GB", "--int8")
    assert _cli(*args, "--offload", "disk", "--int8") == 0


def test_bad_plans_and_placers_are_clear_errors(folder):
    from cogview2.folder_format import model_structure, read_manifest
    from cogview2.placement import Part, Placer

    with pytest.raises(ValueError, match="placement must be one of"):
        MemoryPlan("gpu_offload")
    with pytest.raises(ValueError, match="floating dtype"):
        MemoryPlan("resident", torch.int8)
    models, parts, _ = model_structure(folder, read_manifest(folder))
    with pytest.raises(ValueError, match=r"unknown parts \['nope'\]"):
        Placer(parts, {"coarse": ("nope",)}, MemoryPlan("disk_offload"), "cpu")
    with pytest.raises(ValueError, match=r"needs a file.*\['coglm'\]"):
        Placer({"coglm": Part(models["coglm"])}, {}, MemoryPlan("disk_offload"), "cpu")
    with pytest.raises(ValueError, match="num_images"):
        estimate_memory(models, MemoryPlan(), num_images=0)


def test_plan_and_budget_are_separate_arguments_and_the_old_one_is_deprecated(folder):
    with pytest.warns(DeprecationWarning, match="memory_plan=MemoryPlan"):
        old = CogView2Pipeline.from_pretrained(folder, memory=MemoryPlan("disk_offload"))
    assert (
        old.memory_plan
        == CogView2Pipeline.from_pretrained(
            folder, memory_plan=MemoryPlan("disk_offload")
        ).memory_plan
    )
    with pytest.warns(DeprecationWarning):
        budget = CogView2Pipeline.from_pretrained(folder, memory="1GB")
    assert (
        budget.memory_plan == CogView2Pipeline.from_pretrained(folder, max_memory="1GB").memory_plan
    )
    with pytest.raises(ValueError, match="either memory_plan"):
        CogView2Pipeline.from_pretrained(folder, memory_plan=MemoryPlan(), max_memory="1GB")


def test_cli_and_web_load_through_one_module(folder, tmp_path, monkeypatch):
    from cogview2 import loading
    from cogview2.web import server

    assert server.resolve_weights is loading.resolve_weights
    monkeypatch.setenv(loading.WEIGHTS_ENV, str(folder))
    assert loading.resolve_weights(None) == folder
    with pytest.raises(FileNotFoundError, match="demo weights shipped with the package"):
        loading.resolve_weights(tmp_path / "none")
    assert loading.parse_dtype("bf16") == torch.bfloat16 and loading.parse_dtype(None) is None
    with pytest.raises(ValueError, match="--dtype must be one of"):
        loading.parse_dtype("half")
    with pytest.raises(ValueError, match="need a weights folder, not --tiny"):
        loading.load_pipeline(tiny=True, max_memory="1GB")
    pipe = loading.load_pipeline(None, dtype="float32", memory_plan=MemoryPlan("model_offload"))
    assert pipe.memory_plan.placement == "model_offload" and pipe.coglm.dtype == torch.float32
