"""Memory plans: where the pipeline's weights live, in which dtype, and each stage's predicted peak.

The released CogView2 keeps separate copies of the 6B stage-1 model and of the super-resolution
transformers and needs ~40 GB at batch 1. Here a `MemoryPlan` picks one of three placements:

* ``resident``: every model on the execution device for the whole call (fastest);
* ``model_offload``: the models live in CPU memory; each stage moves its models to the device
  when it starts and the previous stage's models back (diffusers' ``enable_model_cpu_offload``);
  only meaningful with an accelerator;
* ``disk_offload``: the models live in the weights folder; each stage streams its models from
  the safetensors files onto the device (one tensor at a time) and the previous stage's models
  are dropped. Host and device then hold one stage at a time.

A DSR model that shares CogLM's base (the release's checkpoints do) keeps it across the
stage-1 → DSR boundary under both offload placements. ``int8`` stores the transformers' linear
weights as int8 with a float32 scale per output row (`coglm_core.quantize_linears_int8`).

`estimate_memory` predicts the peak of every stage from the models' shapes (the models may be
on the meta device: nothing is allocated), and `choose_plan` picks the fastest plan that fits a
budget. The prediction counts the weights exactly and the largest activations of each stage
from the formulas below; ``bench/memory_stages.py`` measures them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

import localattn
from coglm_core import Int8Linear

from .config import PipelineConfig
from .stage_table import STAGES

PLACEMENTS = ("resident", "model_offload", "disk_offload")
STAGE_ORDER = STAGES  # the stage table's order

CPU_HALF_DECODE_STEP_BYTES = 1_300_000
"""Resident bytes that every stage-1 decoding step adds on CPU in bf16/fp16 and keeps: oneDNN
JIT-compiles and caches a matmul kernel for every new attention length (measured with
``memory_probe``; float32 goes through MKL and does not grow)."""

SAMPLER_COPIES = 3
"""float32 copies of a logits tensor alive while a sampler runs (logits, probabilities and a
cumulative sum / top-k scratch)."""

GUIDANCE_COPIES = 3
"""Extra float32 logits rows alive while classifier-free guidance mixes them (the text-free
logits, ``c − u`` and the guided result)."""

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
}  # fmt: skip


def parse_size(text: str | int) -> int:
    """Bytes of ``"16GB"``, ``"14.5 GiB"``, ``"800MB"`` or an int (GB = 10^9, GiB = 2^30, as
    accelerate's ``max_memory``).

    Raises:
        ValueError: not a size.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE.match(str(text))
        if not match or (match.group(2) or "").lower() not in _UNITS:
            raise ValueError(f"memory size {text!r} not understood; write e.g. '16GB' or '14GiB'")
        value = int(float(match.group(1)) * _UNITS[(match.group(2) or "").lower()])
    if value <= 0:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return value


def format_size(n: int) -> str:
    """``12.35 GB`` or ``41.3 MB`` (decimal units, as `parse_size` reads them), rounded up so
    that a printed budget is never below ``n``."""
    if n >= 10**9:
        return f"{math.ceil(n / 10**7) / 100:.2f} GB"
    return f"{math.ceil(n / 10**5) / 10:.1f} MB"


@dataclass(frozen=True)
class MemoryPlan:
    """How the pipeline holds its weights.

    Attributes:
        placement: ``"resident"``, ``"model_offload"`` or ``"disk_offload"`` (module docstring).
        dtype: Floating dtype of the weights; None keeps the stored dtype.
        int8: Weight-only int8 for every linear layer of the transformers (CogLM, DSR's
            ``attention_plus``, ITERSR); embeddings, layer norms and biases keep ``dtype``.
    """

    placement: str = "resident"
    dtype: torch.dtype | None = None
    int8: bool = False

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        if self.dtype is not None and not self.dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating dtype, got {self.dtype}")

    def describe(self) -> str:
        """``disk_offload, bfloat16, int8 linears``."""
        dtype = str(self.dtype).removeprefix("torch.") if self.dtype else "stored dtype"
        return f"{self.placement}, {dtype}" + (", int8 linears" if self.int8 else "")


@dataclass(frozen=True)
class StageMemory:
    """Predicted memory of one stage.

    Attributes:
        stage: ``"coarse"``, ``"dsr"`` or ``"itersr"``.
        weight_bytes: The weights the stage runs on (a shared base counted once).
        activation_bytes: Its largest transient tensors at the plan's batch sizes.
    """

    stage: str
    weight_bytes: int
    activation_bytes: int

    @property
    def peak_bytes(self) -> int:
        """Weights + activations."""
        return self.weight_bytes + self.activation_bytes


@dataclass(frozen=True)
class MemoryEstimate:
    """Per-stage prediction for a plan.

    Attributes:
        plan: The plan.
        stages: One `StageMemory` per stage, in pipeline order.
        all_weight_bytes: Every model's weights (shared bases once): what ``resident`` holds.
    """

    plan: MemoryPlan
    stages: tuple[StageMemory, ...]
    all_weight_bytes: int

    def stage_peak(self, stage: StageMemory) -> int:
        """Device peak while ``stage`` runs: its own weights under offload, all under resident."""
        if self.plan.placement == "resident":
            return self.all_weight_bytes + stage.activation_bytes
        return stage.peak_bytes

    @property
    def peak_bytes(self) -> int:
        """Device peak of a whole call."""
        return max(self.stage_peak(s) for s in self.stages)

    def table(self) -> str:
        """A markdown table: stage, weights, activations, predicted peak."""
        rows = ["| stage | weights | activations | predicted peak |", "|---|---|---|---|"]
        for s in self.stages:
            rows.append(
                f"| {s.stage} | {format_size(s.weight_bytes)} | "
                f"{format_size(s.activation_bytes)} | {format_size(self.stage_peak(s))} |"
            )
        return "\n".join(rows)


def weight_bytes(modules: Iterable[nn.Module], dtype: torch.dtype | None, int8: bool) -> int:
    """Bytes of the unique tensors of ``modules`` (a base shared by two models counts once) once
    floating tensors are cast to ``dtype`` and, with ``int8``, every linear weight is stored as
    int8 plus a float32 scale per output row. Works on meta-device models."""
    rows: dict[int, int] = {}  # id(linear weight) -> output rows
    scales: set[int] = set()  # id(Int8Linear.weight_scale): counted with its weight
    tensors: dict[int, torch.Tensor] = {}
    for module in modules:
        for sub in module.modules():
            if isinstance(sub, nn.Linear | Int8Linear):
                rows[id(sub.weight)] = sub.weight.shape[0]
            if isinstance(sub, Int8Linear):
                scales.add(id(sub.weight_scale))
        for t in (*module.parameters(), *module.buffers()):
            tensors[id(t)] = t
    total = 0
    for key, t in tensors.items():
        if key in rows and (int8 or t.dtype == torch.int8):
            total += t.numel() + 4 * rows[key]
        elif key in scales:
            continue
        else:
            total += t.numel() * ((dtype or t.dtype) if t.is_floating_point() else t.dtype).itemsize
    return total


def _largest_linear(modules: Iterable[nn.Module]) -> int:
    return max(
        (m.weight.numel() for mod in modules for m in mod.modules()
         if isinstance(m, nn.Linear | Int8Linear)),
        default=0,
    )  # fmt: skip


def _stage_activations(
    stage: str,
    models: Mapping[str, nn.Module],
    config: PipelineConfig,
    num_images: int,
    act_bytes: int,
    cpu_half: bool,
) -> int:
    """Largest transient bytes of one stage (see the module docstring for what is counted)."""
    coglm = models["coglm"]
    c = coglm.config  # type: ignore[union-attr]
    h, f, heads = c.hidden_size, c.mlp_hidden_size, c.num_attention_heads
    n_img, vi = c.num_image_positions, c.num_image_tokens
    if stage == "coarse":
        b = min(num_images, config.stage1_batch)
        m = config.max_prompt_tokens
        # Generation: the KV cache at full length (allocated once) + the sampler over image ids.
        kv = 2 * c.num_layers * b * (m + 1 + n_img) * h * act_bytes
        generation = kv + SAMPLER_COPIES * b * vi * 4
        if config.guidance_scale != 1.0:  # the text-free sequence [BOI, image] and the mixing
            generation += 2 * c.num_layers * b * (1 + n_img) * h * act_bytes
            generation += GUIDANCE_COPIES * b * vi * 4
        jit = CPU_HALF_DECODE_STEP_BYTES * n_img if cpu_half else 0
        # Inverse-prompt scoring: one layer's activations over [image, BOC, caption] (MLP in and
        # out, q/k/v/out), float32 attention scores and probabilities, full-vocabulary logits and
        # their log-softmax for the caption rows.
        length = n_img + 1 + m
        scoring = (
            b * length * (2 * f + 4 * h) * act_bytes
            + 2 * b * heads * length * length * 4
            + 2 * b * m * c.vocab_size * 4
        )
        return max(generation, scoring) + jit
    sr = models[stage]
    cfg = sr.config  # type: ignore[union-attr]
    b = min(num_images, config.sr_batch)
    length = (cfg.level0_len if stage == "dsr" else cfg.text_slots) + cfg.num_high
    # Two phases that are not alive at once: the transformer (one layer's largest activations,
    # MLP in and out, hidden and attention output, + the local attention's scratch), then the
    # sampler over the float32 logits of every hi-res token (with its copies).
    g = cfg.high_grid
    layer = b * length * (2 * f + 4 * h) * act_bytes
    scratch = localattn.workspace_bytes(b, heads, g, g, h // heads)
    logits = SAMPLER_COPIES * b * cfg.num_high * vi * 4
    return max(layer + scratch, logits)


def stage_models(models: Mapping[str, nn.Module | None], stage: str) -> tuple[nn.Module, ...]:
    """The modules a stage runs (DSR and ITERSR include their base transformer)."""
    return (models["coglm"],) if stage == "coarse" else (models[stage],)  # type: ignore[return-value]


def estimate_memory(
    models: Mapping[str, nn.Module | None],
    plan: MemoryPlan,
    *,
    num_images: int = 1,
    config: PipelineConfig | None = None,
    stages: Iterable[str] = STAGE_ORDER,
    device: torch.device | str = "cpu",
) -> MemoryEstimate:
    """Predict each stage's peak device memory under ``plan``.

    Args:
        models: ``{"coglm": CogLM, "dsr": DirectSuperResolution | None, "itersr": ... | None}``,
            real or on the meta device.
        plan: The plan.
        num_images: Images per call (batches are ``min(num_images, stage1_batch / sr_batch)``).
        config: Pipeline batch sizes and prompt limit (default `PipelineConfig()`).
        stages: Stages to include (absent models are skipped).
        device: Execution device (CPU adds oneDNN's per-step kernels in bf16/fp16).

    Returns:
        `MemoryEstimate`.
    """
    config = config or PipelineConfig()
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    present = [s for s in stages if stage_models(models, s)[0] is not None]
    dtype = plan.dtype or models["coglm"].dtype  # type: ignore[union-attr]
    act = dtype.itemsize
    cpu_half = torch.device(device).type == "cpu" and act == 2
    rows = []
    for stage in present:
        mods = stage_models(models, stage)
        extra = 2 * _largest_linear(mods) * act if plan.int8 else 0  # dequantised weight
        rows.append(
            StageMemory(
                stage,
                weight_bytes(mods, plan.dtype, plan.int8),
                _stage_activations(stage, models, config, num_images, act, cpu_half) + extra,
            )
        )
    everything = [m for s in present for m in stage_models(models, s)]
    return MemoryEstimate(plan, tuple(rows), weight_bytes(everything, plan.dtype, plan.int8))


def candidate_plans(device: torch.device | str, dtype: torch.dtype | None) -> list[MemoryPlan]:
    """Plans from fastest to smallest: resident, (model offload on an accelerator), disk offload,
    then the same with int8 linears."""
    accel = torch.device(device).type != "cpu"
    placements = ["resident", *(["model_offload"] if accel else []), "disk_offload"]
    return [MemoryPlan(p, dtype, int8) for int8 in (False, True) for p in placements]


def choose_plan(
    models: Mapping[str, nn.Module | None],
    budget: int | str,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    num_images: int = 1,
    config: PipelineConfig | None = None,
    stages: Iterable[str] = STAGE_ORDER,
) -> tuple[MemoryPlan, MemoryEstimate]:
    """The fastest plan of `candidate_plans` whose predicted peak fits ``budget``.

    Raises:
        ValueError: no plan fits; the message names the smallest budget that would.
    """
    limit = parse_size(budget)
    stages = tuple(stages)
    estimates = [
        estimate_memory(
            models, plan, num_images=num_images, config=config, stages=stages, device=device
        )
        for plan in candidate_plans(device, dtype)
    ]
    for estimate in estimates:
        if estimate.peak_bytes <= limit:
            return estimate.plan, estimate
    smallest = min(estimates, key=lambda e: e.peak_bytes)
    raise ValueError(
        f"memory budget {format_size(limit)} is too small: the smallest plan "
        f"({smallest.plan.describe()}) needs {format_size(smallest.peak_bytes)} at "
        f"{num_images} image(s) per call; raise the budget to at least that, or generate fewer "
        "images per call"
    )
