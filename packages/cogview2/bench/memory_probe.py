"""Measure one stage's peak memory and time, to check `cogview2.memory`'s predictions.

    python packages/cogview2/bench/memory_probe.py --preset 6b --stage dsr --dtype bfloat16 [--int8]
    python packages/cogview2/bench/memory_probe.py --preset medium --stage coarse --dtype float32

Run one stage per process (a process's heap does not shrink back reliably after a stage). The
stage's weights are materialised with random values on the device (like a ``disk_offload``
load: only that stage's models), then the stage runs once on random inputs. Prints one JSON
line: predicted and measured peak bytes above the process's level before the weights, seconds.

What is measured (``--measure``):

* ``tensors`` (default): the peak of live tensor bytes — on CUDA
  ``torch.cuda.max_memory_allocated``, on CPU the same quantity from the allocations and frees
  that torch's profiler records (`peak_tensor_bytes`). Deterministic: this is what
  `cogview2.memory` predicts and what the tests compare with.
* ``rss`` (CPU): the peak of the process's anonymous resident memory (`peak_rss`), what the
  operating system sees. It adds what the C allocator keeps after frees, which varies from run
  to run (the medium DSR stage measured 3-14 % above its tensor peak), and oneDNN's kernel
  cache in bf16 / fp16 (``memory.CPU_HALF_DECODE_STEP_BYTES``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from coglm_core import quantize_linears_int8
from cogview2.config import PipelineConfig
from cogview2.memory import MemoryPlan, estimate_memory, stage_models
from cogview2.models.presets import PRESETS, build_models
from cogview2.recipes import RECIPES
from cogview2.stage_table import STAGES
from cogview2.stages.coarse import generate_low_res
from cogview2.stages.inverse_prompt import caption_scores
from cogview2.stages.super_resolution import direct_super_resolution, iterative_super_resolution


def _status(field: str) -> int:
    """Bytes of a ``/proc/self/status`` field (``VmRSS``, ``VmHWM``, ``RssAnon``; Linux)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status (Linux only)")


@contextmanager
def peak_rss(interval: float = 0.0005) -> Iterator[dict[str, int]]:
    """Peak memory of the block, two ways. ``"anon"``: the peak of ``RssAnon`` (the process's
    own heap and tensors, without file pages such as library code paged in on first use),
    sampled by a thread every ``interval`` seconds (the interpreter's switch interval is
    lowered meanwhile so the thread gets to run). ``"hwm"``: the kernel's high-water mark
    ``VmHWM`` (every resident page, file pages included), reset at entry through
    ``/proc/self/clear_refs``. Both are reported above their level at entry."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")
    start_anon, start_rss = _status("RssAnon"), _status("VmRSS")
    peak = {"anon": start_anon}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["anon"] = max(peak["anon"], _status("RssAnon"))
            time.sleep(interval)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(interval)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    result: dict[str, int] = {}
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(switch)
        result["anon"] = max(peak["anon"], _status("RssAnon")) - start_anon
        result["hwm"] = _status("VmHWM") - start_rss


@contextmanager
def peak_tensor_bytes() -> Iterator[dict[str, int]]:
    """Peak of the CPU tensor bytes allocated in the block and alive at once: the CPU analogue
    of ``torch.cuda.max_memory_allocated``. Torch's profiler records every allocation and free
    of its CPU allocator (the ``[memory]`` events of its trace); the peak of their running sum
    is the result's ``"tensors"``. Allocations made before the block do not count."""
    result: dict[str, int] = {}
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        yield result
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text(encoding="utf-8"))["traceEvents"]
    # Device type 0 is the CPU; the stable sort keeps the record order of equal timestamps.
    memory = [e for e in events if e.get("name") == "[memory]" and e["args"]["Device Type"] == 0]
    live = peak = 0
    for event in sorted(memory, key=lambda e: e["ts"]):
        live += event["args"]["Bytes"]
        peak = max(peak, live)
    result["tensors"] = peak


@torch.no_grad()
def materialize(modules: tuple[nn.Module, ...], device: torch.device, dtype: torch.dtype) -> None:
    """Random weights (normal, std 0.02) for meta modules, one tensor at a time, in ``dtype``."""
    g = torch.Generator(device=device).manual_seed(0)
    for module in modules:
        for sub in module.modules():
            for name, t in [
                *sub.named_parameters(recurse=False),
                *sub.named_buffers(recurse=False),
            ]:
                if not t.is_meta:
                    continue
                fill = torch.empty(t.shape, dtype=dtype if t.is_floating_point() else t.dtype,
                                   device=device)  # fmt: skip
                if fill.is_floating_point():
                    fill.normal_(0.0, 0.02, generator=g)
                else:
                    fill.random_(-127, 128, generator=g)
                if name == "weight_scale":
                    fill = fill.float().abs_().add_(1e-4)
                if isinstance(t, nn.Parameter):
                    setattr(sub, name, nn.Parameter(fill, requires_grad=False))
                else:
                    setattr(sub, name, fill)


def run_stage(models: dict[str, Any], stage: str, num_images: int, config: PipelineConfig,
              device: torch.device, text_len: int) -> None:  # fmt: skip
    """One call of ``stage`` on random text ids and image tokens."""
    coglm = models["coglm"]
    c = coglm.config
    g = torch.Generator(device="cpu").manual_seed(0)
    text = torch.randint(c.english_id_range[0], c.english_id_range[1], (text_len,), generator=g)
    labels = torch.randint(0, 64, (c.num_image_tokens,), generator=g)
    recipe = RECIPES["none"]
    if stage == "coarse":
        low = generate_low_res(coglm, text.tolist(), num_images=num_images, recipe=recipe,
                               labels=labels, generator=g, max_batch=config.stage1_batch,
                               progress=False, guidance_scale=config.guidance_scale)  # fmt: skip
        caption_scores(coglm, low, text.tolist(), separator_id=c.boc_id,
                       max_batch=config.stage1_batch)  # fmt: skip
    elif stage == "dsr":
        low = torch.randint(0, c.num_image_tokens, (num_images, c.num_image_positions), generator=g)
        dsr_text = text[: models["dsr"].config.max_text_len].tolist()
        direct_super_resolution(models["dsr"], dsr_text, low, recipe=recipe, labels=labels,
                                generator=g, max_batch=config.sr_batch)  # fmt: skip
    else:
        n = models["itersr"].config.num_high
        high = torch.randint(0, c.num_image_tokens, (num_images, n), generator=g)
        iterative_super_resolution(models["itersr"], text.tolist(), high, generator=g,
                                   max_batch=config.sr_batch)  # fmt: skip


def probe(preset: str, stage: str, *, dtype: torch.dtype, int8: bool = False, num_images: int = 1,
          device: str = "cpu", text_len: int | None = None, measure: str = "tensors",
          guidance_scale: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """Predict, then measure, one stage (see the module docstring). Returns the JSON row.

    Raises:
        ValueError: ``measure`` is not "tensors" or "rss", or "rss" on an accelerator.
    """
    dev = torch.device(device)
    if measure not in ("tensors", "rss") or (measure == "rss" and dev.type != "cpu"):
        raise ValueError(f"measure must be 'tensors' or (on CPU) 'rss', got {measure!r} on {dev}")
    config = PipelineConfig(guidance_scale=guidance_scale)
    models = build_models(preset)
    if int8:
        for m in models.values():
            quantize_linears_int8(m)
    plan = MemoryPlan("disk_offload", dtype, int8)
    estimate = estimate_memory(models, plan, num_images=num_images, config=config, device=dev)
    predicted = next(s for s in estimate.stages if s.stage == stage)
    text_len = text_len or config.max_prompt_tokens
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
    meter = peak_tensor_bytes() if dev.type == "cpu" and measure == "tensors" else peak_rss()
    tick = time.perf_counter()
    with meter as peaks:
        materialize(stage_models(models, stage), dev, dtype)
        loaded = time.perf_counter()
        run_stage(models, stage, num_images, config, dev, text_len)
    done = time.perf_counter()
    if dev.type == "cuda":
        measured = torch.cuda.max_memory_allocated(dev) - before
    else:
        measured = peaks["tensors" if measure == "tensors" else "anon"]
    return {
        "preset": preset, "stage": stage, "dtype": str(dtype).removeprefix("torch."),
        "int8": int8, "num_images": num_images, "guidance_scale": guidance_scale,
        "device": str(dev), "measure": measure,
        "predicted_bytes": predicted.peak_bytes, "predicted_weight_bytes": predicted.weight_bytes,
        "measured_bytes": measured, "ratio": measured / predicted.peak_bytes,
        "peak_rss_bytes": peaks.get("hwm"),
        "load_seconds": loaded - tick, "run_seconds": done - loaded,
        "threads": torch.get_num_threads(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python packages/cogview2/bench/memory_probe.py", description=__doc__.split("\n")[0]
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="medium")
    p.add_argument("--stage", choices=STAGES, required=True)
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="bfloat16")
    p.add_argument("--int8", action="store_true")
    p.add_argument("-n", "--num-images", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--text-len", type=int, default=None, help="prompt tokens (default: the limit)")
    p.add_argument("--measure", choices=("tensors", "rss"), default="tensors",
                   help="live tensor bytes (default) or, on CPU, resident memory")  # fmt: skip
    p.add_argument("--guidance", type=float, default=1.0, help="stage-1 guidance scale (1 = off)")
    p.add_argument("--out", type=Path, default=None, help="append the JSON line to this file")
    args = p.parse_args(argv)
    row = probe(args.preset, args.stage, dtype=getattr(torch, args.dtype), int8=args.int8,
                num_images=args.num_images, device=args.device, text_len=args.text_len,
                measure=args.measure, guidance_scale=args.guidance)  # fmt: skip
    line = json.dumps(row)
    print(line, flush=True)
    if args.out is not None:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
