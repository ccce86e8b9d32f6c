"""`PipelineConfig`: batch sizes and limits of the pipeline (not of the models)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .stage_table import STAGES


def check_guidance_scale(scale: float) -> float:
    """``scale`` if it is a finite number >= 0, else ValueError."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale):
        raise ValueError(f"guidance_scale must be a finite number >= 0, got {scale!r}")
    if scale < 0:
        raise ValueError(f"guidance_scale must be >= 0 (1 = off), got {scale}")
    return float(scale)


COMPLETION_FILLS = ("infill", "compose")
"""How `CogView2Pipeline.complete` fills the box: the release's infilling, or composition of a
whole drawing of the prompt (`cogview2.stages.composition`)."""


def check_completion_fill(fill: str) -> str:
    """``fill`` if it is one of `COMPLETION_FILLS`, else ValueError."""
    if fill not in COMPLETION_FILLS:
        raise ValueError(f"fill must be one of {list(COMPLETION_FILLS)}, got {fill!r}")
    return fill


@dataclass(frozen=True)
class PipelineConfig:
    """Pipeline-level settings.

    Attributes:
        compression: VQ-VAE compression of both token grids (8: 20×20 ↔ 160 px, 60×60 ↔ 480 px).
        max_prompt_tokens: Longest formatted prompt (text ids, without BOI) accepted by stage 1
            (109 in the release); DSR further limits it to ``DSRConfig.max_text_len`` (95).
            Longer prompts are refused with ValueError, never silently truncated.
        stage1_batch: Samples per stage-1 forward pass (8 in the release).
        sr_batch: Samples per DSR/ITERSR forward pass (4 in the release).
        caption_max_length: Tokens sampled at most by `CogView2Pipeline.caption`.
        completion_upweight: Eq. (7) constant of the completion infilling (1.4).
        default_style: Style (a name of `cogview2.RECIPES`) used when a call gives none:
            ``"mainbody"`` as the release; ``"none"`` for models trained on plain prompts
            (the emoji demo weights).
        guidance_scale: Classifier-free guidance of stage 1 (not in the release): each image
            token is sampled from ``u + scale · (c − u)`` of the prompted (c) and the text-free
            (u, ``[BOI, image]``) logits. 1 = off, as the release; a larger value only helps
            models trained with text dropout (``[coglm] text_dropout``, the emoji demo weights).
        completion_style: Style `CogView2Pipeline.complete` uses when a call gives none:
            ``"none"`` as the release's completion script; ``"plain"`` for the emoji demo
            weights.
        completion_fill: How `CogView2Pipeline.complete` fills the box when a call does not
            say: ``"infill"`` as the release; ``"compose"`` for the emoji demo weights, whose
            CogLM draws whole pictures of one concept and continues the ground when asked to
            infill another (docs/deviations.md #25).
        caption_end: The stage-1 CogLM was trained to end a caption with a pad
            (``[coglm] caption_end``, not in the release): `CogView2Pipeline.caption` may sample
            the pad and stops there. False (the release's models, which never learnt an end):
            captions run until ``caption_max_length``.
        caption_temperature: Sampling temperature of `CogView2Pipeline.caption` when a call
            gives none (1.0, as the release; the emoji demo weights name their concepts
            reliably at 0.3).
        default_stages: The stages a call runs when it names none: all three (the release),
            or a shorter prefix for weights whose later stage was measured to lower the
            picture's fidelity (the emoji demo weights: ``("coarse", "dsr")``,
            docs/deviations.md).
    """

    compression: int = 8
    max_prompt_tokens: int = 109
    stage1_batch: int = 8
    sr_batch: int = 4
    caption_max_length: int = 32
    completion_upweight: float = 1.4
    default_style: str = "mainbody"
    guidance_scale: float = 1.0
    completion_style: str = "none"
    completion_fill: str = "infill"
    caption_end: bool = False
    caption_temperature: float = 1.0
    default_stages: tuple[str, ...] = STAGES

    def __post_init__(self) -> None:
        for name in (
            "compression",
            "max_prompt_tokens",
            "stage1_batch",
            "sr_batch",
            "caption_max_length",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_guidance_scale(self.guidance_scale)
        check_completion_fill(self.completion_fill)
        object.__setattr__(self, "default_stages", tuple(self.default_stages))  # JSON lists
        prefixes = [STAGES[:i] for i in range(1, len(STAGES) + 1)]
        if self.default_stages not in prefixes:
            raise ValueError(f"default_stages must be one of {prefixes}, got {self.default_stages}")
        if not self.caption_temperature > 0:
            raise ValueError(f"caption_temperature must be > 0, got {self.caption_temperature!r}")
        if not isinstance(self.caption_end, bool):
            raise ValueError(f"caption_end must be a bool, got {self.caption_end!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PipelineConfig:
        """Inverse of `to_dict` (unknown keys raise ValueError)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown PipelineConfig fields {unknown}; allowed: {sorted(names)}")
        return cls(**d)
