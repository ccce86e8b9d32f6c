"""`CogView2Pipeline`: text → 20×20 → 60×60 → 480 px, completion and captioning (diffusers style)."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from cluster_sampling import save_labels
from coglm_core.generation import UNKNOWN
from coglm_core.infilling import infill
from coglm_core.pretrained import save_pretrained as save_coglm
from coglm_core.transformer import CogLM
from icetk import IceTokenizer

from . import folder_format as W
from .config import PipelineConfig, check_completion_fill, check_guidance_scale
from .images import ImageLike, image_to_tensor, to_pil, tokens_to_images
from .memory import MemoryPlan, choose_plan
from .models.sr import DirectSuperResolution, IterativeSuperResolution
from .outputs import CogView2Output
from .placement import Placer
from .progress import StageProgress
from .recipes import SamplingRecipe, get_recipe
from .stage_table import STAGE_NAMES as STAGE_NAMES  # re-exported: it was defined here
from .stage_table import STAGES, stage_spec
from .stages.caption import generate_caption_ids
from .stages.coarse import generate_low_res, stage1_sampler
from .stages.completion import Box, box_grid_mask, feathered_box_alpha, paste_into
from .stages.composition import compose_into_box
from .stages.inverse_prompt import caption_scores
from .stages.super_resolution import direct_super_resolution, iterative_super_resolution
from .weights import DEMO_WEIGHTS

BOI_TOKEN = "<start_of_image>"
OutputType = Literal["pil", "pt", "tokens"]
LANGUAGES = {"english": ("common", "english"), "chinese": ("common", "chinese")}


def check_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``; ValueError when this machine cannot run on it (a CUDA
    device with a CPU build of torch or no GPU, or an index past the last GPU)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device ({err})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} is not available: this torch has no CUDA device "
                "(torch.cuda.is_available() is False); use 'cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    return dev


class CogView2Pipeline:
    """The hierarchical CogView2 pipeline with injected components.

    Args:
        tokenizer: `icetk.IceTokenizer` (text + VQ-VAE).
        coglm: Stage-1 `CogLM` (also captioning and inverse-prompt scoring).
        dsr: Direct super-resolution model, or None (then only stage 1 can run).
        itersr: Iterative super-resolution model, or None.
        cluster_labels: (num_image_tokens,) int64 cluster of every image id.
        config: Pipeline settings.
        placer: Where the weights live between stages (`from_pretrained` makes it from a
            `MemoryPlan`); default: everything stays where it is.

    Raises:
        ValueError: the components disagree (vocabulary layout, grids, label count).
    """

    def __init__(
        self,
        tokenizer: IceTokenizer,
        coglm: CogLM,
        dsr: DirectSuperResolution | None,
        itersr: IterativeSuperResolution | None,
        cluster_labels: Tensor,
        config: PipelineConfig | None = None,
        placer: Placer | None = None,
    ) -> None:
        self.tokenizer, self.coglm, self.dsr, self.itersr = tokenizer, coglm, dsr, itersr
        self.cluster_labels = torch.as_tensor(cluster_labels).long().cpu()
        self.config = config or PipelineConfig()
        device = coglm.device
        self._placer = placer or Placer.resident(device)
        self._check_components()
        for model in (coglm, dsr, itersr):
            if model is not None:
                model.eval()

    def _check_components(self) -> None:
        cfg, lay = self.coglm.config, self.tokenizer.layout
        problems = []
        if cfg.num_image_tokens != lay.num_image_tokens:
            problems.append(
                f"CogLM has {cfg.num_image_tokens} image ids, tokenizer {lay.num_image_tokens}"
            )
        if (cfg.boi_id, cfg.boe_id, cfg.boc_id) != (lay.boi_id, lay.boe_id, lay.boc_id):
            problems.append("CogLM and tokenizer disagree on the BOI/BOE/BOC ids")
        if cfg.vocab_size < lay.vocab_size:
            problems.append(f"CogLM vocab_size {cfg.vocab_size} < tokenizer's {lay.vocab_size}")
        if self.cluster_labels.shape != (cfg.num_image_tokens,):
            problems.append(
                f"cluster_labels must be ({cfg.num_image_tokens},), got {tuple(self.cluster_labels.shape)}"
            )
        if self.dsr is not None and self.dsr.config.low_grid != cfg.image_grid_size:
            problems.append(
                f"DSR low_grid {self.dsr.config.low_grid} != CogLM grid {cfg.image_grid_size}"
            )
        if (
            self.dsr is not None
            and self.itersr is not None
            and self.dsr.config.high_grid != self.itersr.config.high_grid
        ):
            problems.append("DSR and ITERSR high grids differ")
        if problems:
            raise ValueError("inconsistent pipeline components: " + "; ".join(problems))

    # ----------------------------------------------------------------------------- sizes
    @property
    def low_grid(self) -> int:
        """Side of the stage-1 token grid (20)."""
        return self.coglm.config.image_grid_size

    @property
    def high_grid(self) -> int:
        """Side of the super-resolution token grid (60)."""
        sr = self.dsr or self.itersr
        return sr.config.high_grid if sr is not None else 3 * self.low_grid

    @property
    def low_image_size(self) -> int:
        """Pixel side of a stage-1 image (160)."""
        return self.low_grid * self.config.compression

    @property
    def image_size(self) -> int:
        """Pixel side of the output images (480)."""
        return self.high_grid * self.config.compression

    @property
    def device(self) -> torch.device:
        """Execution device (where each stage's weights are while it runs)."""
        return self._placer.device

    @property
    def memory_plan(self) -> MemoryPlan:
        """How the weights are held (see `cogview2.memory`)."""
        return self._placer.plan

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> CogView2Pipeline:
        """Move the transformers (and the VQ-VAE's device) in place; shared bases move once.

        Raises:
            ValueError: the pipeline offloads its weights (its placement decides where they go),
                or ``device`` is not available on this machine.
        """
        if device is not None:
            check_device(device)
        if self.memory_plan.placement != "resident":
            raise ValueError(
                f"this pipeline offloads its weights ({self.memory_plan.describe()}); choose the "
                "device and dtype in from_pretrained(..., device=, memory_plan=) instead of .to()"
            )
        for model in (self.coglm, self.dsr, self.itersr):
            if model is not None:
                model.to(device=device, dtype=dtype)
        if device is not None:
            self.tokenizer.image.model.to(device)
            self._placer = Placer.resident(device)
        return self

    def enable_model_cpu_offload(self, device: torch.device | str = "cuda") -> CogView2Pipeline:
        """Keep the transformers in CPU memory and move each stage's models to ``device`` only
        while that stage runs (diffusers' ``enable_model_cpu_offload``); the VQ-VAE moves to
        ``device`` for good. A DSR that shares CogLM's base keeps it across that boundary.

        Returns:
            self.

        Raises:
            ValueError: ``device`` is not available on this machine.
        """
        check_device(device)
        self._placer.release_all()
        models = {"coglm": self.coglm, "dsr": self.dsr, "itersr": self.itersr}
        parts, stages = W.model_parts(models)
        self._placer = Placer(parts, stages, MemoryPlan("model_offload"), device)
        self._placer.prepare()
        self.tokenizer.image.model.to(device)
        return self

    # ----------------------------------------------------------------------------- prompts
    def encode_prompt(self, prompt: str, style: str | SamplingRecipe | None = None) -> list[int]:
        """Text ids of the formatted prompt (without BOI); ValueError when empty or too long.
        ``style`` None means ``config.default_style``."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt is empty; give a text such as 'a red apple'")
        recipe = get_recipe(style or self.config.default_style)
        text = recipe.format(prompt)
        # As the release: encode the template with the literal BOI piece in one pass, so pieces
        # at the end of the text are segmented exactly as there; then drop the trailing BOI.
        lay = self.tokenizer.layout
        ids = self.tokenizer.encode_text(text + BOI_TOKEN)
        # (a tokenizer that does not emit the literal as one piece: encode the text alone)
        ids = ids[:-1] if ids and ids[-1] == lay.boi_id else self.tokenizer.encode_text(text)
        limit = self.max_prompt_tokens
        if len(ids) > limit:
            # a template that adds words ("{} 高清摄影") can be the cause; "{}" adds none
            hint = "" if recipe.template == "{}" else ", or use a style that adds no words (none)"
            raise ValueError(
                f"prompt is {len(ids)} tokens after the style template of {recipe.name!r}; at "
                f"most {limit} are accepted: shorten it{hint}"
            )
        return ids

    @property
    def max_prompt_tokens(self) -> int:
        """Longest formatted prompt accepted (min of the stage-1 and DSR limits)."""
        cfg = self.coglm.config
        limit = min(self.config.max_prompt_tokens, cfg.boi_position)
        if self.dsr is not None:
            limit = min(limit, self.dsr.config.max_text_len)
        return limit

    # ----------------------------------------------------------------------------- text → image
    @torch.no_grad()
    def __call__(
        self,
        prompt: str,
        *,
        num_images: int = 1,
        style: str | SamplingRecipe | None = None,
        generator: torch.Generator | None = None,
        stages: Sequence[str] | None = None,
        output_type: OutputType = "pil",
        progress: bool = True,
        score: bool = True,
        post_select: bool = False,
        candidates: int | None = None,
        guidance_scale: float | None = None,
    ) -> CogView2Output:
        """Generate images for one prompt.

        Args:
            prompt: Raw text (the style template is applied here).
            num_images: Number of images (any positive number; no remainder is dropped).
            style: A name of `RECIPES` or a `SamplingRecipe`; None: ``config.default_style``.
            generator: Random source; the same seed gives the same tokens.
            stages: ``("coarse",)``, ``("coarse", "dsr")`` or ``("coarse", "dsr", "itersr")``;
                None: ``config.default_stages`` (all three, unless the weights say otherwise).
            output_type: "pil", "pt" ((N, 3, S, S) float32 in [0, 1]) or "tokens" (no decoding).
            progress: Progress bars.
            score: Compute inverse-prompt scores (caption log-likelihood of the raw prompt).
            post_select: Sort the images by score, best first (needs ``score``).
            candidates: Post-selection before super-resolution (paper §3, step 1): stage 1
                draws this many images, and only the ``num_images`` with the best caption
                scores go on to the SR stages, best first. None: no selection.
            guidance_scale: Classifier-free guidance of stage 1 (1 = off); None:
                ``config.guidance_scale`` (the weights' own: 1 for the official ones).

        Returns:
            `CogView2Output`.
        """
        recipe = get_recipe(style or self.config.default_style)
        stages, guidance = self.check_inputs(
            prompt,
            num_images=num_images,
            stages=stages,
            output_type=output_type,
            candidates=candidates,
            guidance_scale=guidance_scale,
        )
        text_ids = self.encode_prompt(prompt, recipe)
        bar = StageProgress(len(stages), enabled=progress)
        low = self._run_stage(
            "coarse",
            bar,
            lambda model, batch: generate_low_res(
                model,
                text_ids,
                num_images=candidates or num_images,
                recipe=recipe,
                labels=self.cluster_labels,
                generator=generator,
                max_batch=batch,
                progress=progress,
                guidance_scale=guidance,
            ),
        )
        scores = None
        if score or post_select or candidates:
            scores = caption_scores(
                self.coglm,
                low,
                self.tokenizer.encode_text(prompt),
                separator_id=self.coglm.config.boc_id,
                max_batch=self.config.stage1_batch,
            )
        if candidates:
            keep = torch.argsort(scores, descending=True, stable=True)[:num_images]
            low, scores = low[keep], scores[keep]
        tokens = self._super_resolve(bar, text_ids, low, recipe, stages, generator)
        bar.close()
        if post_select:
            if scores is None:
                raise ValueError("post_select needs score=True")
            order = torch.argsort(scores, descending=True, stable=True)
            tokens, low, scores = tokens[order], low[order], scores[order]
        out = self._output(tokens, low, scores, output_type)
        out.stage_seconds = dict(bar.seconds)
        return out

    def check_inputs(
        self,
        prompt: str,
        *,
        num_images: int = 1,
        stages: Sequence[str] | None = None,
        output_type: str = "pil",
        candidates: int | None = None,
        guidance_scale: float | None = None,
    ) -> tuple[tuple[str, ...], float]:
        """Check every argument of a call once, before any work (as diffusers' ``check_inputs``).

        Returns:
            ``(stages, guidance scale)``: the stages as a tuple and the scale to use (None:
            ``config.guidance_scale``).

        Raises:
            ValueError: the first argument that is wrong, saying what is allowed.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt is empty; give a text such as 'a red apple'")
        stages = self.config.default_stages if stages is None else tuple(stages)
        allowed = [STAGES[:i] for i in range(1, len(STAGES) + 1)]
        if stages not in allowed:
            raise ValueError(f"stages must be one of {allowed}, got {stages}")
        for name in stages:
            if getattr(self, stage_spec(name).model) is None:
                raise ValueError(f"stage {name!r} requested but the pipeline has no {name} model")
        self._check_output(output_type)
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
            raise ValueError(f"num_images must be an int >= 1, got {num_images!r}")
        if candidates is not None and (
            isinstance(candidates, bool)
            or not isinstance(candidates, int)
            or candidates < num_images
        ):
            raise ValueError(
                f"candidates must be None or an int >= num_images ({num_images}), got {candidates!r}"
            )
        scale = self.config.guidance_scale if guidance_scale is None else guidance_scale
        return stages, check_guidance_scale(scale)

    def _run_stage(
        self, name: str, bar: StageProgress, run: Callable[[Any, int], Tensor]
    ) -> Tensor:
        """Run one stage: name it on the bar, place its models, call ``run(model, max_batch)``
        with the model and batch size the stage table names, count it done."""
        spec = stage_spec(name)
        bar.start(spec.label)
        start = time.perf_counter()
        self._placer.enter(name)
        out = run(getattr(self, spec.model), getattr(self.config, spec.batch_field))
        if out.device.type == "cuda":
            torch.cuda.synchronize(out.device)  # the seconds of the stage, not of its launch
        bar.seconds[name] = time.perf_counter() - start
        bar.done()
        return out

    def _super_resolve(
        self,
        bar: StageProgress,
        text_ids: list[int],
        low: Tensor,
        recipe: SamplingRecipe,
        stages: Sequence[str],
        generator: torch.Generator | None,
    ) -> Tensor:
        """The SR stages of ``stages`` on (N, g²) stage-1 ids: (N, 60²) ids, or ``low``."""
        tokens = low
        if "dsr" in stages:
            tokens = self._run_dsr(bar, text_ids, low, recipe, generator)
        if "itersr" in stages:
            tokens = self._run_stage(
                "itersr",
                bar,
                lambda model, batch: iterative_super_resolution(
                    model,
                    text_ids,
                    tokens,
                    generator=generator,
                    max_batch=batch,
                    top_k=recipe.lopar_top_k,
                    temperature=recipe.lopar_temperature,
                    passes=recipe.lopar_passes,
                ),
            )
        return tokens

    @torch.no_grad()
    def super_resolve(
        self,
        prompt: str,
        low_res_tokens: Tensor,
        *,
        style: str | SamplingRecipe | None = None,
        stages: Sequence[str] | None = None,
        generator: torch.Generator | None = None,
        output_type: OutputType = "pt",
    ) -> CogView2Output:
        """Run the SR stages of a call on given stage-1 tokens (e.g. a real picture's).

        Args:
            prompt: Raw text (the style template is applied here).
            low_res_tokens: (N, g, g) or (N, g²) stage-1 ids.
            style, generator, output_type: As for ``__call__``.
            stages: ``("coarse", "dsr")`` or ``("coarse", "dsr", "itersr")`` (stage 1 is not
                run again); None: ``config.default_stages``.

        Returns:
            `CogView2Output` (no scores).
        """
        low = low_res_tokens.reshape(low_res_tokens.shape[0], -1).long()
        if low.shape[1] != self.low_grid**2:
            raise ValueError(
                f"low_res_tokens must be (N, {self.low_grid}, {self.low_grid}) ids, "
                f"got {tuple(low_res_tokens.shape)}"
            )
        recipe = get_recipe(style or self.config.default_style)
        stages, _ = self.check_inputs(prompt, num_images=low.shape[0], stages=stages,
                                      output_type=output_type)  # fmt: skip
        text_ids = self.encode_prompt(prompt, recipe)
        bar = StageProgress(len(stages) - 1, enabled=False)
        tokens = self._super_resolve(bar, text_ids, low.to(self.device), recipe, stages, generator)
        return self._output(tokens, low, None, output_type)

    def _run_dsr(
        self,
        bar: StageProgress,
        text_ids: list[int],
        low: Tensor,
        recipe: SamplingRecipe,
        generator: torch.Generator | None,
    ) -> Tensor:
        """The DSR stage of a call (the same for generation and completion): (N, 60²) ids."""
        return self._run_stage(
            "dsr",
            bar,
            lambda model, batch: direct_super_resolution(
                model,
                text_ids,
                low,
                recipe=recipe,
                labels=self.cluster_labels,
                generator=generator,
                max_batch=batch,
            ),
        )

    @staticmethod
    def _check_output(output_type: str) -> None:
        if output_type not in ("pil", "pt", "tokens"):
            raise ValueError(f"output_type must be 'pil', 'pt' or 'tokens', got {output_type!r}")

    def decode(self, tokens: Tensor, output_type: OutputType = "pt") -> list[Image.Image] | Tensor:
        """Decode (N, g, g) or (N, g²) ids to images of side ``image_size`` (low-res ids are
        decoded at their size and nearest-resized, as the release's ``--only-first-stage``)."""
        return tokens_to_images(
            self.tokenizer, tokens, self.config.compression, self.image_size, output_type
        )

    def _output(
        self, tokens: Tensor, low: Tensor, scores: Tensor | None, output_type: OutputType
    ) -> CogView2Output:
        images = None if output_type == "tokens" else self.decode(tokens, output_type)
        side = round(tokens.shape[1] ** 0.5)
        return CogView2Output(
            images=images,
            tokens=tokens.reshape(-1, side, side).cpu(),
            low_res_tokens=low.reshape(-1, self.low_grid, self.low_grid).cpu(),
            scores=scores,
        )

    def encode_pixels(self, x: Tensor, side: int) -> Tensor:
        """Token ids of pictures brought to pixel side ``side`` (the ids stage 1 (160 px) or the
        SR stages (480 px) work on).

        Args:
            x: (N, 3, S, S) float in [0, 1].
            side: ``low_image_size`` or ``image_size``.

        Returns:
            (N, g, g) ids, g = side / compression.

        A 480 px picture is brought to 160 px by averaging each 3×3 block (``area``), which is
        what an anti-aliased render at 160 px is closest to: on the README's concepts the
        tokens of the real 480 px render, so reduced, equal those of its 160 px render at
        94–99 % (bilinear: 94–98 %), and the demo's captions of them name the concept.
        """
        if x.shape[-1] != side:
            if x.shape[-1] % side == 0:
                x = F.interpolate(x, size=(side, side), mode="area")
            else:
                x = F.interpolate(
                    x, size=(side, side), mode="bilinear", antialias=True, align_corners=False
                )
        return self.tokenizer.encode_image(x.clamp(0, 1), compression=self.config.compression)

    # ----------------------------------------------------------------------------- completion
    @torch.no_grad()
    def complete(
        self,
        image: ImageLike,
        box: Box,
        prompt: str,
        *,
        num_images: int = 4,
        style: str | SamplingRecipe | None = None,
        generator: torch.Generator | None = None,
        output_type: OutputType = "pil",
        progress: bool = True,
        keep_outside: bool = True,
        feather: int = 4,
        fill: str | None = None,
    ) -> CogView2Output:
        """Regenerate the inside of ``box`` guided by ``prompt``; tokens outside stay as encoded.

        Args:
            image: RGB PIL image or (3, S, S) tensor in [0, 1], S = ``image_size`` (480).
            box: ``(top, left, bottom, right)`` fractions of the side, rows first.
            prompt: Text describing the whole image.
            num_images: Samples.
            style: Recipe; None: ``config.completion_style`` (``"none"``, as the release's
                completion script, unless the weights say otherwise).
            generator: Random source.
            output_type: As in `__call__`.
            progress: Progress bar.
            keep_outside: Paste the decoded box into the input picture, so that every pixel
                ``feather`` px or more outside the box is the input's own (False: the whole
                decoded picture, whose pixels outside the box are the VQ-VAE's reconstruction).
            feather: Width in px of the blend at the box edge (0: a hard edge; ``"infill"``).
            fill: ``"infill"`` (the release): the CogLM fills the box's cells from the prompt and
                the cells around them, then DSR and LoPAR inside the box. ``"compose"``: the
                hierarchy draws the prompt as a whole picture (``config.default_stages``), which
                is fitted into the box with its plain ground keyed out
                (`cogview2.stages.composition`). None: ``config.completion_fill``.

        Returns:
            `CogView2Output`; ``tokens`` are the (N, 60, 60) final ids: outside the box's token
            cells they equal the encoded input image bit for bit.
        """
        if self.dsr is None or self.itersr is None:
            raise ValueError("completion needs the DSR and ITERSR models")
        self.check_inputs(prompt, num_images=num_images, output_type=output_type)
        fill = check_completion_fill(fill or self.config.completion_fill)
        recipe = get_recipe(style or self.config.completion_style)
        x = image_to_tensor(image, [self.image_size])
        # the box and ``feather`` are checked before any model runs
        low_mask = box_grid_mask(box, self.image_size, self.low_grid).flatten()
        high_mask = box_grid_mask(box, self.image_size, self.high_grid)
        alpha = feathered_box_alpha(box, self.image_size, feather)
        if fill == "compose":
            cells = (low_mask, high_mask.flatten())
            return self._compose(x, box, cells, prompt, recipe, num_images, generator,
                                 output_type, progress, keep_outside)  # fmt: skip
        text_ids = self.encode_prompt(prompt, recipe)
        bar = StageProgress(len(STAGES), enabled=progress, prefix="complete: ")

        def coarse(model: CogLM, batch: int) -> Tensor:
            device = model.device
            known = self.encode_pixels(x, self.low_image_size).reshape(1, -1).to(device)
            known = known.masked_fill(low_mask.to(device), UNKNOWN)
            prefix = torch.tensor([*text_ids, model.config.boi_id], device=device)
            return infill(
                model,
                prefix,
                known.expand(num_images, -1).contiguous(),
                sampler=stage1_sampler(self.cluster_labels, recipe),
                generator=generator,
                per_region=False,
                upweight=recipe.attn_plus,
            )

        def itersr(model: IterativeSuperResolution, batch: int) -> Tensor:
            # the encoded original outside the box, DSR's tokens inside; LoPAR only inside
            original = self.encode_pixels(x, self.image_size).reshape(1, -1).to(high.device)
            start = torch.where(high_mask.flatten().to(high.device), high, original)
            return iterative_super_resolution(
                model, text_ids, start, generator=generator, input_mask=high_mask,
                max_batch=batch, top_k=recipe.lopar_top_k, temperature=recipe.lopar_temperature,
                passes=recipe.lopar_passes,
            )  # fmt: skip

        low = self._run_stage("coarse", bar, coarse)
        high = self._run_dsr(bar, text_ids, low, recipe, generator)
        high = self._run_stage("itersr", bar, itersr)
        bar.close()
        if output_type == "tokens" or not keep_outside:
            return self._output(high, low, None, output_type)
        result = self._output(high, low, None, "pt")
        pasted = paste_into(x, result.images, alpha)  # type: ignore[arg-type]
        result.images = pasted if output_type == "pt" else to_pil(pasted)
        return result

    def _compose(
        self, x: Tensor, box: Box, cells: tuple[Tensor, Tensor], prompt: str,
        recipe: SamplingRecipe, num_images: int, generator: torch.Generator | None,
        output_type: OutputType, progress: bool, keep_outside: bool,
    ) -> CogView2Output:  # fmt: skip
        """`complete` with ``fill="compose"``; x: (1, 3, S, S) in [0, 1]; ``cells``: the box's
        (20², ) and (60², ) bool cell masks."""
        drawn = self(prompt, num_images=num_images, style=recipe, generator=generator,
                     output_type="pt", progress=progress)  # fmt: skip
        pictures = compose_into_box(x, drawn.images, box)  # type: ignore[arg-type]  # (N, 3, S, S)

        def tokens(side: int, inside: Tensor) -> Tensor:  # (N, g²): the composite's in the box
            new = self.encode_pixels(pictures, side).reshape(num_images, -1)
            old = self.encode_pixels(x.to(pictures.device), side).reshape(1, -1)
            return torch.where(inside.to(new.device), new, old)

        low = tokens(self.low_image_size, cells[0])
        high = tokens(self.image_size, cells[1])
        if output_type == "tokens" or not keep_outside:
            return self._output(high, low, None, output_type)
        result = self._output(high, low, None, "tokens")
        result.images = pictures.cpu() if output_type == "pt" else to_pil(pictures)
        return result

    # ----------------------------------------------------------------------------- captioning
    @torch.no_grad()
    def caption(
        self,
        image: ImageLike,
        *,
        language: Literal["english", "chinese"] = "english",
        max_length: int | None = None,
        temperature: float | None = None,
        num_captions: int = 1,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """Describe an image in English (BOE) or Chinese (BOC) with the stage-1 model.

        Args:
            image: RGB PIL image or (3, S, S) tensor in [0, 1] with S = 160 or 480.
            language: "english" or "chinese"; sampling is restricted to that language's ids.
            max_length: Tokens at most (default ``config.caption_max_length``).
            temperature: Sampling temperature (default ``config.caption_temperature``).
            num_captions: Captions to sample.
            generator: Random source.

        Returns:
            ``num_captions`` strings.
        """
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {list(LANGUAGES)}, got {language!r}")
        x = image_to_tensor(image, sorted({self.low_image_size, self.image_size}))
        ids = self.encode_pixels(x, self.low_image_size).reshape(1, -1).expand(num_captions, -1)
        lay = self.tokenizer.layout
        allowed = lay.allowed_ids(LANGUAGES[language], vocab_size=self.coglm.config.vocab_size)
        stop: tuple[int, ...] = ()
        if self.config.caption_end:  # the model learnt to end a caption with a pad
            pad = self.coglm.config.pad_id
            allowed = allowed.clone()
            allowed[pad] = True
            stop = (pad,)
        self._placer.enter("coarse")
        captions = generate_caption_ids(
            self.coglm,
            ids,
            separator_id=lay.language_tag_id(language),
            allowed_ids=allowed,
            max_length=max_length or self.config.caption_max_length,
            temperature=self.config.caption_temperature if temperature is None else temperature,
            stop_ids=stop,
            generator=generator,
        )
        return [self.tokenizer.decode_text(c) for c in captions]

    # ----------------------------------------------------------------------------- weights
    def save_pretrained(self, path: str | os.PathLike[str]) -> Path:
        """Write the pipeline folder (see `cogview2.folder_format`); shared bases are written once.

        Raises:
            ValueError: the weights are offloaded to disk or quantised (save a resident,
                unquantised pipeline).
        """
        if self.memory_plan.placement == "disk_offload" or self.memory_plan.int8:
            raise ValueError(
                f"cannot save a pipeline loaded as {self.memory_plan.describe()}; load it "
                "resident without int8 to save it"
            )
        self._placer.release_all()  # model_offload: the weights are all in CPU memory
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(root / "tokenizer")
        save_coglm(self.coglm, root / "coglm")
        shares = {
            name: getattr(self, name).save_pretrained(root / name, shared_base=self.coglm)
            for name in ("dsr", "itersr")
            if getattr(self, name) is not None
        }  # a base shared with CogLM is written once
        save_labels(root / W.LABELS_FILE, self.cluster_labels)
        W.write_manifest(root, self.config.to_dict(), shares)
        return root

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
        memory_plan: MemoryPlan | None = None,
        max_memory: str | int | None = None,
        num_images: int = 1,
        memory: MemoryPlan | str | int | None = None,
    ) -> CogView2Pipeline:
        """Load a folder written by `save_pretrained` (or by `convert_official`).

        Weights are streamed from safetensors one tensor at a time (never a whole extra copy);
        the manifest is read and the models are built (on the meta device) once.

        Args:
            path: The folder; ``"demo"`` names the demo weights shipped with the package
                (`DEMO_WEIGHTS`; write ``"./demo"`` for a folder of that name).
            device: Execution device.
            dtype: Weight dtype (default: as stored).
            memory_plan: Where the weights live between stages (`MemoryPlan`); default: all
                resident. Exclusive with ``max_memory``.
            max_memory: A device budget such as ``"16GB"`` or bytes: the fastest plan that fits
                is chosen (`cogview2.memory.choose_plan`), as diffusers' ``max_memory``.
            num_images: Images per call the budget must allow.
            memory: Deprecated: a plan or a budget in one argument; use ``memory_plan`` or
                ``max_memory``.

        Raises:
            FileNotFoundError: the folder or one of its files is missing (all are named).
            ValueError: wrong format, inconsistent components, a budget no plan fits (the
                message names the smallest that would), both a plan and a budget, or a device
                this machine lacks.
        """
        if memory is not None:
            warnings.warn(
                "from_pretrained(memory=...) is deprecated: pass memory_plan=MemoryPlan(...) or "
                "max_memory='16GB'",
                DeprecationWarning,
                stacklevel=2,
            )
            if memory_plan is not None or max_memory is not None:
                raise ValueError("give memory_plan or max_memory, not the deprecated memory too")
            if isinstance(memory, MemoryPlan):
                memory_plan = memory
            else:
                max_memory = memory
        if memory_plan is not None and max_memory is not None:
            raise ValueError("give either memory_plan (say where the weights live) or max_memory")
        root = DEMO_WEIGHTS if str(path) == "demo" else Path(path)
        check_device(device)
        manifest = W.read_manifest(root)
        structure = W.model_structure(root, manifest)
        config = PipelineConfig.from_dict(manifest.get("config", {}))
        if max_memory is None:
            plan = memory_plan or MemoryPlan(dtype=dtype)
            if plan.dtype is None and dtype is not None:
                plan = MemoryPlan(plan.placement, dtype, plan.int8)
        else:
            plan, _ = choose_plan(
                structure[0], max_memory, device=device, dtype=dtype, num_images=num_images,
                config=config,
            )  # fmt: skip
        parts = W.load_pipeline(
            root, device=device, plan=plan, manifest=manifest, structure=structure
        )
        del parts["config"]
        return cls(**parts, config=config)
