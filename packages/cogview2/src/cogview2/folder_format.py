"""The pipeline folder format: one subfolder per component, safetensors + JSON, atomic writes.

::

    pipeline.json            format, version, PipelineConfig, which models share a base
    tokenizer/               IceTokenizer.save_pretrained
    coglm/                   coglm_core save_pretrained (config.json + model.safetensors)
    dsr/sr_config.json       DSRConfig;     dsr/mixins.safetensors (attention_plus + positions)
    dsr/base/                only when DSR's transformer differs from coglm's
    itersr/sr_config.json    ITERSRConfig;  itersr/mixins.safetensors (positions)
    itersr/base/             only when ITERSR's transformer differs from coglm's
    cluster_labels.npy       cluster label of every image id
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cluster_sampling import load_labels
from coglm_core import atomic_write_text, quantize_linears_int8, save_safetensors
from coglm_core.config import CogLMConfig
from coglm_core.pretrained import CONFIG_NAME, WEIGHTS_NAME
from coglm_core.transformer import CogLM
from icetk import IceTokenizer

from .files import check_safetensors, require_files
from .memory import MemoryPlan
from .models.config import config_from_json
from .models.sr import (
    MIXINS_FILE,
    SHARED,
    SR_CONFIG_FILE,
    build_sr,
)
from .placement import Part, Placer
from .stage_table import STAGE_TABLE

FORMAT = "cogview2-pipeline"
FORMAT_VERSION = 1
PIPELINE_FILE = "pipeline.json"
LABELS_FILE = "cluster_labels.npy"


def atomic_save_tensors(tensors: dict[str, Tensor], path: Path) -> None:
    """A safetensors file through a temporary file and `os.replace`, written one tensor at a
    time (`coglm_core.save_safetensors`)."""
    save_safetensors(tensors, path)


def same_weights(a: CogLM, b: CogLM) -> bool:
    """True when two models are the same object or hold bit-identical tensors."""
    if a is b:
        return True
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k])
        for k in sa
    )


def write_manifest(root: Path, config: dict[str, Any], shares: dict[str, str | None]) -> None:
    """``pipeline.json``: the format, the `PipelineConfig` as a dict, and per SR model present
    (``"dsr"``, ``"itersr"``) whether it shares CogLM's base; an absent model is ``null``."""
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": config,
    }
    for name in ("dsr", "itersr"):
        manifest[name] = {"shares_base": shares[name]} if name in shares else None
    atomic_write_text(root / PIPELINE_FILE, json.dumps(manifest, indent=2) + "\n")


def read_manifest(root: Path) -> dict[str, Any]:
    """Read and check ``pipeline.json``."""
    if not root.is_dir():
        raise FileNotFoundError(f"weights folder {root} does not exist")
    require_files(root, [PIPELINE_FILE])
    manifest = json.loads((root / PIPELINE_FILE).read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{root / PIPELINE_FILE}: format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}, expected {FORMAT!r} version {FORMAT_VERSION}"
        )
    return manifest


def model_structure(
    root: Path, manifest: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Part], dict[str, tuple[str, ...]]]:
    """The pipeline's models on the meta device (no weights read), the `Part` of every file,
    and the parts each stage uses.

    Returns:
        (``{"coglm", "dsr", "itersr"}`` models, parts by name, stage → part names).
    """
    require_files(root, [f"coglm/{CONFIG_NAME}", f"coglm/{WEIGHTS_NAME}"])
    coglm = CogLM(CogLMConfig.load(root / "coglm" / CONFIG_NAME), device="meta")
    models: dict[str, Any] = {"coglm": coglm}
    for name in ("dsr", "itersr"):
        entry = manifest.get(name)
        if entry is None:
            models[name] = None
            continue
        folder, shared = root / name, entry.get("shares_base") == SHARED
        base_files = [] if shared else [f"base/{CONFIG_NAME}", f"base/{WEIGHTS_NAME}"]
        require_files(folder, [SR_CONFIG_FILE, MIXINS_FILE, *base_files])
        config = config_from_json((folder / SR_CONFIG_FILE).read_text(encoding="utf-8"))
        base = (
            coglm
            if shared
            else CogLM(CogLMConfig.load(folder / "base" / CONFIG_NAME), device="meta")
        )
        models[name] = build_sr(base, config)
    return models, *model_parts(models, root)


def model_parts(
    models: dict[str, Any], root: Path | None = None
) -> tuple[dict[str, Part], dict[str, tuple[str, ...]]]:
    """The `Part` of each model's tensors (a base shared with CogLM is CogLM's part) and the
    parts each stage uses; with ``root``, each part names its file in that weights folder.

    Returns:
        (parts by name, stage → part names).
    """

    def file(*names: str) -> Path | None:
        return None if root is None else root.joinpath(*names)

    coglm = models["coglm"]
    parts = {"coglm": Part(coglm, file("coglm", WEIGHTS_NAME))}
    stages: dict[str, tuple[str, ...]] = {}
    for spec in STAGE_TABLE:
        model = models.get(spec.model)
        if model is None:
            continue
        if model is coglm:
            stages[spec.name] = ("coglm",)
            continue
        name = spec.model  # an SR model: its base (CogLM's part when shared) + its mixins
        base = "coglm" if model.base is coglm else f"{name}.base"
        parts.setdefault(base, Part(model.base, file(name, "base", WEIGHTS_NAME)))
        parts[f"{name}.mixins"] = Part(model.mixins, file(name, MIXINS_FILE), "mixins.")
        stages[spec.name] = (base, f"{name}.mixins")
    return parts, stages


def load_pipeline(
    root: Path,
    *,
    device: torch.device | str,
    plan: MemoryPlan | None = None,
    manifest: dict[str, Any] | None = None,
    structure: tuple[dict[str, Any], dict[str, Part], dict[str, tuple[str, ...]]] | None = None,
) -> dict[str, Any]:
    """Read a `CogView2Pipeline.save_pretrained` folder: the constructor arguments of
    `CogView2Pipeline`, with ``config`` as a plain dict and a ``placer`` that holds the weights
    as ``plan`` says (default: all resident, stored dtype). Weights are streamed from the
    safetensors files one tensor at a time; under ``disk_offload`` none are read until a stage
    needs them. ``manifest`` and ``structure`` (`read_manifest`, `model_structure` of this
    folder) spare a second read when the caller has them already."""
    plan = plan or MemoryPlan()
    manifest = manifest or read_manifest(root)
    require_files(root, [LABELS_FILE])
    if not (root / "tokenizer").is_dir():
        raise FileNotFoundError(f"weights folder {root} is missing ['tokenizer/']")
    # ``structure``: `model_structure` of this folder, already built by the caller (planning)
    models, parts, stages = structure or model_structure(root, manifest)
    for part in parts.values():  # before any work: under disk offload they are read late
        check_safetensors(part.file)  # type: ignore[arg-type]
    if plan.int8:
        for model in models.values():
            if model is not None:
                quantize_linears_int8(model)
    placer = Placer(parts, stages, plan, device)
    placer.prepare()
    tokenizer = IceTokenizer.from_pretrained(root / "tokenizer", device=device)
    labels = load_labels(root / LABELS_FILE, num_codes=models["coglm"].config.num_image_tokens)
    return {
        "tokenizer": tokenizer,
        **models,
        "cluster_labels": labels,
        "config": manifest.get("config", {}),
        "placer": placer,
    }
