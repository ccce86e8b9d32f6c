"""Per-stage fidelity: does each stage of the hierarchy add detail or destroy it?

For concepts a pipeline was trained on, every stage's picture is compared with the real
high-resolution render of the concept (PSNR, and SSIM from scikit-image):

* ``bicubic``: stage 1 (20×20 tokens) decoded and bicubic-upscaled to the output size;
* ``dsr``: stage 1 + direct super-resolution;
* ``lopar``: stage 1 + DSR + LoPAR iterative super-resolution (the final picture);
* ``vqvae``: the VQ-VAE's own reconstruction of the real render at the output size: the ceiling
  that any token model can reach.

And, with the real tokens as inputs (teacher forcing): the accuracy of DSR's argmax from the
real low-res tokens, and of each LoPAR pass's argmax at the positions that pass re-masks, from
the real high-res tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..lopar import NUM_PASSES, pass_mask, tiled_order
from ..pipeline import CogView2Pipeline
from ..stage_table import STAGES
from .metrics import psnr

__all__ = ["FIDELITY_ROWS", "ConceptFidelity", "FidelityResults", "ssim", "stage_fidelity"]

FIDELITY_ROWS: tuple[str, ...] = ("bicubic", "dsr", "lopar", "vqvae")
"""The pictures compared with the real render, in the order of the hierarchy (see module doc)."""

_STAGES_OF_ROW = {"bicubic": STAGES[:1], "dsr": STAGES[:2], "lopar": STAGES[:3]}
"""The stages each generated row runs (a prefix of the stage table)."""


def ssim(reference: Tensor, image: Tensor) -> Tensor:
    """Per-image SSIM of RGB images in [0, 1] (scikit-image's ``structural_similarity``,
    Gaussian-weighted as in Wang et al. 2004).

    Args:
        reference: (N, 3, H, W) float.
        image: (N, 3, H, W) float, same shape (clamped to [0, 1]).

    Returns:
        (N,) float64.

    Raises:
        ImportError: scikit-image is not installed (``pip install "cogview2[eval]"``).
    """
    try:
        from skimage.metrics import structural_similarity
    except ImportError as err:  # an optional dependency
        raise ImportError('SSIM needs scikit-image: pip install "cogview2[eval]"') from err
    if reference.shape != image.shape or reference.dim() != 4:
        raise ValueError(
            f"need two (N, C, H, W) tensors of one shape, got {tuple(reference.shape)} and "
            f"{tuple(image.shape)}"
        )
    a = reference.double().permute(0, 2, 3, 1).numpy()
    b = image.double().clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return torch.tensor(
        [
            structural_similarity(x, y, channel_axis=-1, data_range=1.0, gaussian_weights=True)
            for x, y in zip(a, b, strict=True)
        ],
        dtype=torch.float64,
    )


@dataclass(frozen=True)
class ConceptFidelity:
    """The measurements of one concept.

    Attributes:
        prompt: The prompt generated from (the concept's caption).
        psnr: dB against the real render, per `FIDELITY_ROWS` entry.
        ssim: SSIM against the real render, per `FIDELITY_ROWS` entry.
        dsr_token_accuracy: Fraction of DSR's argmax tokens equal to the real high-res tokens,
            from the real low-res tokens.
        lopar_token_accuracy: Per LoPAR pass (1..6), the same at the positions the pass
            re-masks, from the real high-res tokens.
    """

    prompt: str
    psnr: dict[str, float]
    ssim: dict[str, float]
    dsr_token_accuracy: float
    lopar_token_accuracy: tuple[float, ...]


@dataclass(frozen=True)
class FidelityResults:
    """`ConceptFidelity` of several concepts, their means and the settings used.

    Attributes:
        concepts: One entry per concept.
        seed: Concept ``i`` was generated with seed ``seed + i``.
        style: The sampling recipe.
    """

    concepts: tuple[ConceptFidelity, ...]
    seed: int
    style: str

    def mean(self) -> dict[str, object]:
        """Means over the concepts: ``psnr``/``ssim`` per row, token accuracies, and the number
        of concepts whose final picture is below its bicubic one (``lopar_below_bicubic``)."""
        n = len(self.concepts)

        def avg(values: Sequence[float]) -> float:
            return float(np.mean(values)) if values else float("nan")

        return {
            "psnr": {r: avg([c.psnr[r] for c in self.concepts]) for r in FIDELITY_ROWS},
            "ssim": {r: avg([c.ssim[r] for c in self.concepts]) for r in FIDELITY_ROWS},
            "dsr_token_accuracy": avg([c.dsr_token_accuracy for c in self.concepts]),
            "lopar_token_accuracy": [
                avg([c.lopar_token_accuracy[k] for c in self.concepts]) for k in range(NUM_PASSES)
            ],
            "lopar_below_bicubic": sum(c.psnr["lopar"] < c.psnr["bicubic"] for c in self.concepts),
            "concepts": n,
        }

    def to_json(self) -> dict[str, object]:
        """JSON-ready: settings, means and every concept."""
        return {
            "seed": self.seed,
            "style": self.style,
            "mean": self.mean(),
            "concepts": [asdict(c) for c in self.concepts],
        }


def _unit(x: Tensor) -> Tensor:
    """uint8 images to float in [0, 1]; float images as they are."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


@torch.no_grad()
def _teacher_forced(
    pipe: CogView2Pipeline, text: list[int], low: Tensor, high: Tensor
) -> tuple[float, tuple[float, ...]]:
    """(DSR accuracy, per-pass LoPAR accuracies) from real tokens ``low`` (low²,) and
    ``high`` (high²,)."""
    dsr, itersr = pipe.dsr, pipe.itersr
    if dsr is None or itersr is None:
        raise ValueError("the pipeline has no DSR or ITERSR model")
    device = dsr.extra_positions.device
    high = high.to(device)
    dsr_text = torch.tensor(text[: dsr.config.max_text_len], dtype=torch.long, device=device)
    pred = dsr(dsr_text, low.reshape(1, -1).to(device)).argmax(-1)[0]
    dsr_acc = float((pred == high).double().mean())
    grid = itersr.config.high_grid
    order = tiled_order(grid, device=device).flatten()
    it_device = itersr.extra_positions.device
    it_text = torch.tensor(text[: itersr.config.text_slots], dtype=torch.long, device=it_device)
    boi = itersr.base.config.boi_id
    passes = []
    for step in range(1, NUM_PASSES + 1):
        mask = pass_mask(order, step)
        masked = torch.where(mask, torch.full_like(high, boi), high).to(it_device)
        pred = itersr(it_text, masked.reshape(1, -1)).argmax(-1)[0].to(device)
        passes.append(float((pred[mask] == high[mask]).double().mean()))
    return dsr_acc, tuple(passes)


def stage_fidelity(
    pipe: CogView2Pipeline,
    prompts: Sequence[str],
    renders: Tensor,
    low_renders: Tensor,
    *,
    seed: int = 0,
    style: str | None = None,
    guidance_scale: float | None = None,
    progress: bool = False,
) -> FidelityResults:
    """Measure every stage of ``pipe`` against the real renders of the prompts' concepts.

    Each prompt is generated three times with the same seed (``seed + i``), stopping after
    stage 1, after DSR and after LoPAR, so the three pictures share their earlier stages.

    Args:
        pipe: A pipeline with DSR and ITERSR.
        prompts: N prompts (captions of concepts the pipeline was trained on).
        renders: (N, 3, S, S) uint8 or float in [0, 1]: the real renders at the pipeline's
            output size S (``pipe.image_size``).
        low_renders: (N, 3, s, s), the same at the stage-1 size s (``pipe.low_image_size``):
            their tokens are DSR's teacher-forced input.
        seed: Base seed.
        style: Sampling recipe (None: the pipeline's default).
        guidance_scale: Stage-1 guidance (None: the pipeline's default).
        progress: A progress bar over the prompts.

    Returns:
        `FidelityResults`.

    Raises:
        ValueError: renders of the wrong shape, or a prompt count that does not match.
    """
    from tqdm.auto import tqdm

    size, low_size = pipe.image_size, pipe.low_image_size
    for name, x, side in (("renders", renders, size), ("low_renders", low_renders, low_size)):
        if x.dim() != 4 or tuple(x.shape[1:]) != (3, side, side):
            raise ValueError(f"{name} must be (N, 3, {side}, {side}), got {tuple(x.shape)}")
        if len(prompts) != x.shape[0] or not prompts:
            raise ValueError(f"need one of {name} per prompt, got {len(prompts)} and {x.shape[0]}")
    real, real_low = (_unit(x) for x in (renders, low_renders))
    style_name = style or pipe.config.default_style
    compression = pipe.config.compression
    out = []
    for i, prompt in enumerate(tqdm(prompts, disable=not progress, desc="stage fidelity")):
        target = real[i : i + 1]
        pictures: dict[str, Tensor] = {}
        for row, stages in _STAGES_OF_ROW.items():
            gen = torch.Generator(device=pipe.device).manual_seed(seed + i)
            result = pipe(
                prompt,
                style=style_name,
                generator=gen,
                stages=stages,
                output_type="pt",
                progress=False,
                score=False,
                guidance_scale=guidance_scale,
            )
            image = result.images.float()  # type: ignore[union-attr]
            if image.shape[-1] != size:  # stage 1 only: bicubic to the output size
                image = F.interpolate(image, size=(size, size), mode="bicubic", align_corners=False)
            pictures[row] = image.clamp(0, 1)
        high = pipe.tokenizer.encode_image(target, compression=compression).reshape(-1)
        decoded = pipe.tokenizer.decode_image(high.reshape(1, -1), compression=compression)
        pictures["vqvae"] = decoded.float()[..., :size, :size].clamp(0, 1)
        low = pipe.tokenizer.encode_image(real_low[i : i + 1], compression=compression)
        text = pipe.encode_prompt(prompt, style_name)
        dsr_acc, lopar_acc = _teacher_forced(pipe, text, low, high)
        out.append(
            ConceptFidelity(
                prompt=prompt,
                psnr={r: float(psnr(target, pictures[r])[0]) for r in FIDELITY_ROWS},
                ssim={r: float(ssim(target, pictures[r])[0]) for r in FIDELITY_ROWS},
                dsr_token_accuracy=dsr_acc,
                lopar_token_accuracy=lopar_acc,
            )
        )
    return FidelityResults(tuple(out), seed=seed, style=style_name)
