"""The results of ``cogview2 eval`` as frozen dataclasses; `EvalResults.to_json` is the
``eval-results.json`` document (the same keys the report has always had)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .fidelity import FidelityResults

__all__ = [
    "ClassifierResults",
    "EvalResults",
    "FrechetResults",
    "RetrievalResults",
    "SeenResults",
]


@dataclass(frozen=True)
class ClassifierResults:
    """Group / subgroup accuracy of the classifier on generated and real held-out pictures."""

    num_groups: int
    num_subgroups: int
    train_images: int
    real_images: int
    generated_images: int
    real_group_acc: float
    real_subgroup_acc: float
    gen_group_acc: float
    gen_subgroup_acc: float
    chance_group_uniform: float
    chance_group_majority: float
    chance_subgroup_uniform: float


@dataclass(frozen=True)
class FrechetResults:
    """Fréchet distance in the classifier's features (and between two halves of the real)."""

    generated_vs_real: float
    real_vs_real_split: float | None


@dataclass(frozen=True)
class RetrievalResults:
    """Inverse-prompt retrieval: 1 of ``candidates`` captions."""

    candidates: int
    generated_acc: float
    real_acc: float
    chance: float


@dataclass(frozen=True)
class SeenResults:
    """The classifier rows on training concepts."""

    prompts: tuple[str, ...]
    gen_group_acc: float
    gen_subgroup_acc: float
    real_group_acc: float
    real_subgroup_acc: float


@dataclass(frozen=True)
class EvalResults:
    """Every number of one evaluation.

    Attributes:
        weights: The weights' name in the report.
        config: The `EvalConfig` used, as a dict (style and guidance resolved).
        psnr_low, psnr_high: VQ-VAE reconstruction PSNR at the stage-1 and output sizes.
        prompts: The held-out prompts.
        classifier, frechet, retrieval: The held-out metrics.
        seen: The training-concept rows (None: skipped).
        fidelity: The per-stage fidelity table (None: skipped).
        seconds, machine, torch_threads: Where and how long.
    """

    weights: str
    config: dict[str, Any]
    psnr_low: float
    psnr_high: float
    prompts: tuple[str, ...]
    classifier: ClassifierResults
    frechet: FrechetResults
    retrieval: RetrievalResults
    seen: SeenResults | None
    fidelity: FidelityResults | None
    seconds: float
    machine: str
    torch_threads: int

    def to_json(self) -> dict[str, Any]:
        """The ``eval-results.json`` document."""
        out: dict[str, Any] = {
            "weights": self.weights,
            "config": self.config,
            "psnr_low": self.psnr_low,
            "psnr_high": self.psnr_high,
            "classifier": asdict(self.classifier),
            "prompts": {"used": list(self.prompts)},
            "frechet": asdict(self.frechet),
            "retrieval": asdict(self.retrieval),
        }
        if self.seen is not None:
            out["seen"] = {**asdict(self.seen), "prompts": list(self.seen.prompts)}
        if self.fidelity is not None:
            out["fidelity"] = self.fidelity.to_json()
        out.update(seconds=self.seconds, machine=self.machine, torch_threads=self.torch_threads)
        return out
