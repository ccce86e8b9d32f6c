"""Recipe runs for test_training_fsdp.py under ``torchrun`` (or in one process).

``python -m torch.distributed.run --standalone --nproc-per-node 2 recipe_worker.py CONFIG JOBS``:
``CONFIG`` is a JSON file of ``TrainingConfig.to_dict()``; ``JOBS`` a JSON list of
``{"workdir": folder, "recipe": "coglm" | "dsr" | "itersr", "stop_after": N or null}``, run in
turn in one process group with ``fsdp = true`` in the coglm, dsr and itersr sections.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from cogview2.training import TrainingConfig
from cogview2.training.pretrain import pretrain_recipe
from cogview2.training.runtime import init_distributed
from cogview2.training.super_resolution import dsr_recipe, itersr_recipe


def with_fsdp(cfg: TrainingConfig, workdir: str) -> TrainingConfig:
    """``cfg`` with FSDP2 in the trained sections and another work folder."""
    return dataclasses.replace(
        cfg,
        workdir=workdir,
        coglm=dataclasses.replace(cfg.coglm, fsdp=True),
        dsr=dataclasses.replace(cfg.dsr, fsdp=True),
        itersr=dataclasses.replace(cfg.itersr, fsdp=True),
    )


def main() -> None:
    torch.set_num_threads(1)
    base = TrainingConfig.from_dict(json.loads(Path(sys.argv[1]).read_text()))
    init_distributed()
    for job in json.loads(sys.argv[2]):
        cfg = with_fsdp(base, job["workdir"])
        if job["recipe"] == "coglm":
            pretrain_recipe(cfg, progress=False)
        else:
            recipe = dsr_recipe if job["recipe"] == "dsr" else itersr_recipe
            recipe(cfg, progress=False, stop_after=job.get("stop_after"))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
