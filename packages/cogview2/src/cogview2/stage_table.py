"""The three stages of the hierarchy, declared once: the pipeline runs them in this order, the
placer moves their models, the memory plans and the evaluation name them from here."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["STAGES", "STAGE_NAMES", "STAGE_TABLE", "StageSpec", "stage_spec"]


@dataclass(frozen=True)
class StageSpec:
    """One stage.

    Attributes:
        name: ``"coarse"``, ``"dsr"`` or ``"itersr"`` (the ``stages=`` values of a call).
        model: The pipeline attribute holding its model (``"coglm"``, ``"dsr"``, ``"itersr"``).
        label: What the progress bar (and the web page) calls it.
        batch_field: The `PipelineConfig` field with its samples per forward pass.
    """

    name: str
    model: str
    label: str
    batch_field: str


STAGE_TABLE: tuple[StageSpec, ...] = (
    StageSpec("coarse", "coglm", "stage 1: text → low-res tokens", "stage1_batch"),
    StageSpec("dsr", "dsr", "direct super-resolution", "sr_batch"),
    StageSpec("itersr", "itersr", "iterative super-resolution (LoPAR)", "sr_batch"),
)
"""The stages in the order they run; a call runs a prefix of them."""

STAGES: tuple[str, ...] = tuple(s.name for s in STAGE_TABLE)
"""``("coarse", "dsr", "itersr")``."""

STAGE_NAMES: dict[str, str] = {s.name: s.label for s in STAGE_TABLE}
"""Stage name → progress label."""


def stage_spec(name: str) -> StageSpec:
    """The `StageSpec` of ``name``; ValueError naming the stages for anything else."""
    for spec in STAGE_TABLE:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown stage {name!r}; the stages are {list(STAGES)}")
