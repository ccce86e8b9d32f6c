"""Time and peak memory of one image under each memory plan, 6B configuration, random weights.

    python packages/cogview2/bench/memory_plans.py --device cuda --out plans.jsonl   # GPU box
    python packages/cogview2/bench/memory_plans.py --preset small --device cpu       # smoke test

Writes a random-weight weights folder once (``--folder``, default ``/tmp/cogview2-<preset>``;
the 6B models take ~28 GB of disk in bf16), then for each plan loads the models with
`cogview2.placement.Placer` exactly as ``from_pretrained(memory=plan)`` does and runs the three
stages for ``--num-images`` images, timing each stage including its ``enter`` (the host→device
copy or the disk read the plan costs). Prints one JSON line per (plan, stage): seconds and, on
CUDA, ``max_memory_allocated``. The tokenizer is not needed: the stages run on random ids.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from memory_probe import materialize, run_stage

from coglm_core import quantize_linears_int8
from coglm_core.pretrained import save_pretrained as save_coglm
from cogview2 import folder_format as W
from cogview2.config import PipelineConfig
from cogview2.memory import MemoryPlan
from cogview2.models.presets import build_models
from cogview2.placement import Placer

PLANS = (
    MemoryPlan("resident", torch.bfloat16),
    MemoryPlan("model_offload", torch.bfloat16),
    MemoryPlan("model_offload", torch.bfloat16, int8=True),
    MemoryPlan("disk_offload", torch.bfloat16, int8=True),
)


def write_random_folder(preset: str, root: Path) -> None:
    """coglm/, dsr/ (sharing coglm's base), itersr/ with its own base, and pipeline.json; one
    model materialised at a time."""
    models = build_models(preset)
    materialize((models["coglm"],), torch.device("cpu"), torch.bfloat16)
    save_coglm(models["coglm"], root / "coglm")
    shares = {}
    for name in ("dsr", "itersr"):
        model = models[name]
        materialize((model,), torch.device("cpu"), torch.bfloat16)
        shares[name] = model.save_pretrained(root / name, shared_base=models["coglm"])
        if model.base is not models["coglm"]:
            model.base.to("meta")
        model.mixins.to("meta")
    W.write_manifest(root, {}, shares)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="6b", choices=("6b", "medium", "small"))
    p.add_argument("--device", default="cuda")
    p.add_argument("-n", "--num-images", type=int, default=1)
    p.add_argument("--folder", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = p.parse_args()
    root = args.folder or Path(f"/tmp/cogview2-{args.preset}")
    if not (root / W.PIPELINE_FILE).is_file():
        write_random_folder(args.preset, root)
    dev = torch.device(args.device)
    config = PipelineConfig()
    for plan in PLANS:
        models, parts, stages = W.model_structure(root, W.read_manifest(root))
        if plan.int8:
            for model in models.values():
                quantize_linears_int8(model)
        placer = Placer(parts, stages, plan, dev)
        tick = time.perf_counter()
        placer.prepare()
        rows = [{"stage": "load", "seconds": time.perf_counter() - tick}]
        for stage in ("coarse", "dsr", "itersr"):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            tick = time.perf_counter()
            placer.enter(stage)
            run_stage(models, stage, args.num_images, config, dev, text_len=16)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            row = {"stage": stage, "seconds": time.perf_counter() - tick}
            if dev.type == "cuda":
                row["peak_gb"] = torch.cuda.max_memory_allocated(dev) / 1e9
            rows.append(row)
        placer.release_all()
        del models, parts, placer
        for row in rows:
            line = json.dumps({"plan": plan.describe(), "n": args.num_images, **row})
            print(line, flush=True)
            if args.out is not None:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(line + "\n")


if __name__ == "__main__":
    main()
