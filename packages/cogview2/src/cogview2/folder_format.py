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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor

from cluster_sampling import load_labels
from coglm_core import atomic_write_text, quantize_linears_int8, save_safetensors
from coglm_core.config import CogLMConfig
from coglm_core.pretrained import CONFIG_NAME, WEIGHTS_NAME, save_state_dict
from coglm_core.pretrained import from_pretrained as load_coglm
from coglm_core.transformer import CogLM
from icetk import IceTokenizer

from .memory import MemoryPlan
from .models.config import DSRConfig, ITERSRConfig, config_from_json, config_to_json
from .models.sr import DirectSuperResolution, IterativeSuperResolution, build_sr
from .placement import Part, Placer
from .stage_table import STAGE_TABLE

FORMAT = "cogview2-pipeline"
FORMAT_VERSION = 1
PIPELINE_FILE = "pipeline.json"
LABELS_FILE = "cluster_labels.npy"
SR_CONFIG_FILE = "sr_config.json"
MIXINS_FILE = "mixins.safetensors"
SHARED = "coglm"


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


def save_sr_parts(
    folder: Path,
    config: DSRConfig | ITERSRConfig,
    mixins: Mapping[str, Tensor],
    base: Mapping[str, Tensor] | None,
    base_config: CogLMConfig,
) -> str | None:
    """Write one SR model folder from its parts: ``sr_config.json``, ``mixins.safetensors`` and,
    when ``base`` (a ``transformer.*`` state dict) is given, ``base/``. Returns the share tag
    of the manifest (`SHARED` when the base is CogLM's and not written)."""
    atomic_write_text(folder / SR_CONFIG_FILE, config_to_json(config) + "\n")
    atomic_save_tensors(dict(mixins), folder / MIXINS_FILE)
    if base is None:
        return SHARED
    save_state_dict(base, base_config, folder / "base")
    return None


def save_sr(
    model: DirectSuperResolution | IterativeSuperResolution, folder: Path, coglm: CogLM | None
) -> str | None:
    """Write one SR model; its base only when it is not ``coglm`` (None: always). Returns the
    share tag."""
    base = None if model.base is coglm else model.base.state_dict()
    return save_sr_parts(folder, model.config, model.mixin_state_dict(), base, model.base.config)


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


def load_sr(
    folder: Path,
    coglm: CogLM,
    shares: str | None,
    *,
    device: torch.device | str,
    dtype: torch.dtype | None,
) -> DirectSuperResolution | IterativeSuperResolution:
    """Inverse of `save_sr`."""
    require_files(
        folder,
        [SR_CONFIG_FILE, MIXINS_FILE]
        + ([] if shares == SHARED else ["base/config.json", "base/model.safetensors"]),
    )
    config = config_from_json((folder / SR_CONFIG_FILE).read_text(encoding="utf-8"))
    base = coglm if shares == SHARED else load_coglm(folder / "base", device=device, dtype=dtype)
    model = build_sr(base, config)
    check_safetensors(folder / MIXINS_FILE)
    state = load_file(folder / MIXINS_FILE, device=str(device))
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    model.load_mixin_state_dict(state)
    return model


def require_files(root: Path, names: list[str]) -> None:
    """FileNotFoundError naming every missing file of a weights folder."""
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"weights folder {root} is missing {missing}")


def check_safetensors(path: Path) -> None:
    """ValueError naming ``path`` when it is not a complete safetensors file (truncated,
    corrupt, or another format); the header and the data length are checked, no tensor is
    read."""
    try:
        with safe_open(path, framework="pt", device="cpu"):
            pass
    except (SafetensorError, OSError) as err:
        raise ValueError(
            f"{path} is not a complete safetensors file ({err}): it is truncated or corrupt; "
            "copy or write the weights folder again"
        ) from err


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
