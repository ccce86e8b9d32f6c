"""Convert the official SAT checkpoints + icetk files + ``cluster_label.npy`` to our format."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

from cluster_sampling import load_labels, save_labels
from coglm_core.config import CogLMConfig
from coglm_core.pretrained import WEIGHTS_NAME, save_state_dict
from coglm_core.sat_checkpoint import load_sat_checkpoint
from coglm_core.transformer import CogLM
from icetk import IceTokenizer

from . import folder_format as W
from .config import PipelineConfig
from .folder_format import same_weights
from .memory import MemoryPlan
from .models.config import DSRConfig, ITERSRConfig
from .models.sr import SHARED, DirectSuperResolution, IterativeSuperResolution, save_sr_parts
from .pipeline import CogView2Pipeline

PathLike = str | os.PathLike[str]


@dataclass
class ConversionReport:
    """What `convert_official` did.

    Attributes:
        output: The written pipeline folder (None for `load_official`).
        dsr_shares_base: DSR's ``transformer.*`` equals CogLM's, so it is stored once.
        itersr_shares_base: Same for ITERSR (not expected: ITERSR was fully fine-tuned).
        ignored_keys: Checkpoint tensors not used, per component (e.g. ITERSR ``attention_plus``).
    """

    output: Path | None
    dsr_shares_base: bool
    itersr_shares_base: bool
    ignored_keys: dict[str, list[str]] = field(default_factory=dict)


def _base_model(state: dict[str, Tensor], config: CogLMConfig) -> CogLM:
    model = CogLM(config, device="meta")
    model.load_state_dict(
        {k: v for k, v in state.items() if k.startswith("transformer.")}, assign=True
    )
    return model.eval()


def _unused(state: dict[str, Tensor], used: dict[str, Tensor]) -> list[str]:
    return sorted(k for k in state if not k.startswith("transformer.") and k not in used)


def load_official(
    coglm_dir: PathLike,
    dsr_dir: PathLike,
    itersr_dir: PathLike,
    tokenizer_dir: PathLike,
    cluster_labels: PathLike,
    *,
    coglm_config: CogLMConfig | None = None,
    dsr_config: DSRConfig | None = None,
    itersr_config: ITERSRConfig | None = None,
    pipeline_config: PipelineConfig | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[CogView2Pipeline, ConversionReport]:
    """Build a `CogView2Pipeline` in memory from the official files (see `convert_official`).

    All three models are held at once (the 6B release: ~27 GB in bf16); to run within less
    memory, `convert_official` once (it streams) and load with a `MemoryPlan`.

    Returns:
        The pipeline and a `ConversionReport` whose ``output`` is None.
    """
    ck = load_sat_checkpoint(coglm_dir, coglm_config, dtype=dtype)
    config = ck.config
    coglm = _base_model(ck.state_dict, config)
    ignored: dict[str, list[str]] = {"coglm": _unused(ck.state_dict, {})}
    del ck
    shares = {}
    models: dict[str, DirectSuperResolution | IterativeSuperResolution] = {}
    for name, folder, cls, sr_cfg in (
        ("dsr", dsr_dir, DirectSuperResolution, dsr_config or DSRConfig()),
        ("itersr", itersr_dir, IterativeSuperResolution, itersr_config or ITERSRConfig()),
    ):
        sr_ck = load_sat_checkpoint(folder, config, dtype=dtype)
        base = _base_model(sr_ck.state_dict, config)
        shares[name] = same_weights(base, coglm)
        model = cls(coglm if shares[name] else base, sr_cfg)  # type: ignore[arg-type]
        model.load_mixin_state_dict(sr_ck.state_dict)
        ignored[name] = _unused(sr_ck.state_dict, model.mixin_state_dict())
        models[name] = model
        del sr_ck, base
    tokenizer = IceTokenizer.from_pretrained(tokenizer_dir)
    labels = load_labels(cluster_labels, num_codes=config.num_image_tokens)
    pipe = CogView2Pipeline(
        tokenizer,
        coglm,
        models["dsr"],
        models["itersr"],
        labels,
        pipeline_config,  # type: ignore[arg-type]
    )
    return pipe, ConversionReport(None, shares["dsr"], shares["itersr"], ignored)


def _same_as_file(state: dict[str, Tensor], file: Path) -> bool:
    """``state`` equals the tensors of a safetensors file (read one tensor at a time)."""
    with safe_open(file, framework="pt") as f:
        keys = set(f.keys())
        return keys == set(state) and all(
            torch.equal(state[k].cpu(), f.get_tensor(k)) for k in sorted(keys)
        )


def convert_official(
    coglm_dir: PathLike,
    dsr_dir: PathLike,
    itersr_dir: PathLike,
    tokenizer_dir: PathLike,
    cluster_labels: PathLike,
    output: PathLike,
    *,
    coglm_config: CogLMConfig | None = None,
    dsr_config: DSRConfig | None = None,
    itersr_config: ITERSRConfig | None = None,
    pipeline_config: PipelineConfig | None = None,
    dtype: torch.dtype | None = None,
) -> ConversionReport:
    """Read the three official folders (``coglm``, ``cogview2-dsr``, ``cogview2-itersr``; either
    SAT layout, see `coglm_core.sat_checkpoint.resolve_sat_checkpoint`), the icetk files
    (``ice_text.model`` + ``ice_image.pt``, or our tokenizer format) and ``cluster_label.npy``,
    and write a `CogView2Pipeline` folder. Nothing pickled is executed.

    One checkpoint is in memory at a time (memory-mapped; a ``dtype`` cast makes one copy of
    it), each is written tensor by tensor, and DSR's and ITERSR's base transformers are compared
    with the written CogLM one tensor at a time: the peak host memory is the largest checkpoint
    (DSR: base + ``attention_plus``) plus one tensor.

    Args:
        coglm_dir, dsr_dir, itersr_dir: Checkpoint folders.
        tokenizer_dir: Folder with the icetk files.
        cluster_labels: The ``cluster_label.npy`` file.
        output: Folder to write.
        coglm_config: Architecture; default from coglm's ``model_config.json`` and the shapes
            (the DSR/ITERSR json files are not read, as in the release).
        dsr_config, itersr_config: SR layouts (release values by default).
        pipeline_config: Pipeline settings.
        dtype: Cast the weights (e.g. ``torch.float16``); default keeps the stored dtype.

    Returns:
        `ConversionReport`.
    """
    out = Path(output)
    tokenizer = IceTokenizer.from_pretrained(tokenizer_dir)
    ck = load_sat_checkpoint(coglm_dir, coglm_config, dtype=dtype)
    config = ck.config
    labels = load_labels(cluster_labels, num_codes=config.num_image_tokens)
    ignored: dict[str, list[str]] = {"coglm": _unused(ck.state_dict, {})}
    save_state_dict(ck.transformer_state_dict(), config, out / "coglm")
    del ck
    shares: dict[str, str | None] = {}
    for name, folder, cls, sr_cfg in (
        ("dsr", dsr_dir, DirectSuperResolution, dsr_config or DSRConfig()),
        ("itersr", itersr_dir, IterativeSuperResolution, itersr_config or ITERSRConfig()),
    ):
        sr_ck = load_sat_checkpoint(folder, config, dtype=dtype)
        base = sr_ck.transformer_state_dict()
        same = _same_as_file(base, out / "coglm" / WEIGHTS_NAME)
        model = cls(CogLM(config, device="meta"), sr_cfg)  # type: ignore[arg-type]
        model.load_mixin_state_dict(sr_ck.state_dict)  # checks names and shapes
        mixins = model.mixin_state_dict()
        ignored[name] = _unused(sr_ck.state_dict, mixins)
        shares[name] = save_sr_parts(out / name, sr_cfg, mixins, None if same else base, config)
        del sr_ck, base, model, mixins
    tokenizer.save_pretrained(out / "tokenizer")
    save_labels(out / W.LABELS_FILE, labels)
    W.write_manifest(out, (pipeline_config or PipelineConfig()).to_dict(), shares)
    # Check the components against each other (vocabulary, grids, labels) without reading a
    # weight: the structure alone, with nothing loaded.
    CogView2Pipeline.from_pretrained(out, memory_plan=MemoryPlan("disk_offload"))
    return ConversionReport(out, shares["dsr"] == SHARED, shares["itersr"] == SHARED, ignored)
