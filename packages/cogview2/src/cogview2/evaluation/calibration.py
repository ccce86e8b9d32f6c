"""Sampling calibration: which DSR and LoPAR settings keep the most of the real picture?

The release's sampling constants (DSR from 100 clusters at T2 0.89, six LoPAR passes at top-k
40…10) were tuned for 20,000-code, 6B-parameter models. A small model that reproduces its
training concepts does better nearer to greedy. `sampling_sweep` measures that: for concepts a
pipeline was trained on, stage 1 is sampled once per concept (seed ``seed + i``), and every
candidate recipe super-resolves those same tokens (same seed), so the candidates differ only in
their SR sampling. Each picture is compared with the real render (PSNR and SSIM, as
`stage_fidelity`). The recipe of the demo weights was chosen this way (docs/deviations.md, 22).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..lopar import NUM_PASSES, PASS_TOP_K
from ..pipeline import CogView2Pipeline
from ..recipes import SamplingRecipe, get_recipe
from ..stage_table import STAGES
from .fidelity import ssim
from .metrics import psnr

__all__ = ["Candidate", "CandidateScore", "default_candidates", "sampling_sweep", "sweep_table"]

GREEDY = (1,) * NUM_PASSES
"""LoPAR top-k 1 on every pass: the argmax."""


@dataclass(frozen=True)
class Candidate:
    """One setting to measure: a recipe and the stages it runs after stage 1.

    Attributes:
        name: Label in the table.
        recipe: The sampling recipe (its stage-1 fields are not used: stage 1 is shared).
        stages: ``STAGES[:2]`` (DSR only) or ``STAGES[:3]`` (DSR + LoPAR).
    """

    name: str
    recipe: SamplingRecipe
    stages: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.stages not in (STAGES[:2], STAGES[:3]):
            raise ValueError(f"stages must be {STAGES[:2]} or {STAGES[:3]}, got {self.stages}")


def default_candidates(base: str | SamplingRecipe = "plain") -> list[Candidate]:
    """The grid the demo recipe was chosen from: four DSR settings (DSR only), then LoPAR
    after ``base``'s DSR: the release's schedule, greedy over all six passes, and greedy over
    the last 3, 2 and 1 passes."""
    recipe = get_recipe(base)
    dsr = [
        ("DSR 1 cluster, T2 0.1", 1, 0.1),
        ("DSR 1 cluster, T2 1", 1, 1.0),
        ("DSR 5 clusters, T2 0.4 (release, flat styles)", 5, 0.4),
        ("DSR 100 clusters, T2 0.89 (release)", 100, 0.89),
    ]
    out = [
        Candidate(name, replace(recipe, topk_dsr=k, temp_cluster_dsr=t2), STAGES[:2])
        for name, k, t2 in dsr
    ]
    every = tuple(range(1, NUM_PASSES + 1))
    lopar = [
        ("LoPAR passes 1-6, release top-k, T 1", PASS_TOP_K, every),
        ("LoPAR passes 1-6, greedy", GREEDY, every),
        ("LoPAR passes 4-6, greedy", GREEDY, every[3:]),
        ("LoPAR passes 5-6, greedy", GREEDY, every[4:]),
        ("LoPAR pass 6, greedy", GREEDY, every[5:]),
    ]
    out += [
        Candidate(
            name, replace(recipe, lopar_top_k=k, lopar_temperature=1.0, lopar_passes=p), STAGES[:3]
        )
        for name, k, p in lopar
    ]
    return out


@dataclass(frozen=True)
class CandidateScore:
    """A candidate's pictures against the real renders.

    Attributes:
        name: The candidate's name.
        psnr: dB per concept.
        ssim: SSIM per concept.
        below_bicubic: Concepts whose picture is below their stage-1 bicubic picture.
    """

    name: str
    psnr: tuple[float, ...]
    ssim: tuple[float, ...]
    below_bicubic: int

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim))

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "mean_psnr": self.mean_psnr, "mean_ssim": self.mean_ssim}


@torch.no_grad()
def sampling_sweep(
    pipe: CogView2Pipeline,
    prompts: Sequence[str],
    renders: Tensor,
    candidates: Sequence[Candidate],
    *,
    seed: int = 0,
    progress: bool = False,
) -> list[CandidateScore]:
    """Score each candidate's SR sampling on the same stage-1 tokens.

    Args:
        pipe: A pipeline with DSR and ITERSR.
        prompts: N prompts (captions of concepts the pipeline was trained on).
        renders: (N, 3, S, S) uint8 or float in [0, 1]: the real renders at ``pipe.image_size``.
        candidates: The settings to compare (`default_candidates`).
        seed: Prompt ``i`` uses seed ``seed + i`` for stage 1 and for every candidate's SR.
        progress: A progress bar over the prompts.

    Returns:
        A `CandidateScore` for stage 1 bicubic-upscaled (named ``"stage 1, bicubic"``), then
        one per candidate, in order.

    Raises:
        ValueError: no candidates, or renders that do not match the prompts or the pipeline.
    """
    from tqdm.auto import tqdm

    size = pipe.image_size
    if not candidates:
        raise ValueError("need at least one candidate")
    if renders.dim() != 4 or tuple(renders.shape[1:]) != (3, size, size):
        raise ValueError(f"renders must be (N, 3, {size}, {size}), got {tuple(renders.shape)}")
    if len(prompts) != renders.shape[0] or not prompts:
        raise ValueError(f"need one render per prompt, got {len(prompts)} and {renders.shape[0]}")
    real = renders.float() / 255.0 if renders.dtype == torch.uint8 else renders.float()
    names = ["stage 1, bicubic", *(c.name for c in candidates)]
    scores: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for i, prompt in enumerate(tqdm(prompts, disable=not progress, desc="sampling sweep")):
        target = real[i : i + 1]
        first = pipe(
            prompt,
            generator=torch.Generator(device=pipe.device).manual_seed(seed + i),
            stages=STAGES[:1],
            output_type="pt",
            progress=False,
            score=False,
        )
        bicubic = F.interpolate(
            first.images.float(),  # type: ignore[union-attr]
            size=(size, size),
            mode="bicubic",
            align_corners=False,
        )
        pictures = [bicubic]
        for cand in candidates:
            out = pipe.super_resolve(
                prompt,
                first.low_res_tokens,
                style=cand.recipe,
                stages=cand.stages,
                generator=torch.Generator(device=pipe.device).manual_seed(seed + i),
            )
            pictures.append(out.images.float())  # type: ignore[union-attr]
        for name, picture in zip(names, pictures, strict=True):
            picture = picture.clamp(0, 1)
            scores[name].append((float(psnr(target, picture)[0]), float(ssim(target, picture)[0])))
    base = [p for p, _ in scores[names[0]]]
    return [
        CandidateScore(
            name=n,
            psnr=tuple(p for p, _ in scores[n]),
            ssim=tuple(s for _, s in scores[n]),
            below_bicubic=sum(p < b for (p, _), b in zip(scores[n], base, strict=True)),
        )
        for n in names
    ]


def sweep_table(scores: Sequence[CandidateScore]) -> str:
    """A markdown table of `sampling_sweep`'s means (PSNR, SSIM, concepts below bicubic)."""
    lines = ["| setting | PSNR | SSIM | below bicubic |", "|---|---|---|---|"]
    lines += [
        f"| {s.name} | {s.mean_psnr:.2f} dB | {s.mean_ssim:.3f} | {s.below_bicubic} of {len(s.psnr)} |"
        for s in scores
    ]
    return "\n".join(lines)
