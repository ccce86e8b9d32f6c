"""What the page's buttons do, without Gradio: validate, call the pipeline, shape the result.

`PageHandlers` raises ValueError for anything the person at the page can fix; the Gradio layer
(`cogview2.web.app`) shows those messages. Every generation runs with an explicit seed, so
``pipe(prompt, num_images=n, style=style,
generator=torch.Generator(device=pipe.device).manual_seed(seed))`` reproduces the page's images.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

import torch
from PIL import Image

from ..config import COMPLETION_FILLS
from ..pipeline import CogView2Pipeline
from ..recipes import RECIPES
from ..stages.completion import Box
from .config import WebConfig
from .inputs import check_count, check_prompt, load_upload, resolve_seed, square_resize

PipelineSource = CogView2Pipeline | Callable[[], CogView2Pipeline]
"""A pipeline, or a function that builds one (called once, on first use)."""
GalleryItems = list[tuple[Image.Image, str]]
"""(image, caption) pairs, the value of a Gradio gallery."""


class PageHandlers:
    """The page's actions on one pipeline.

    Args:
        source: A `CogView2Pipeline`, or a zero-argument function returning one (loaded lazily,
            once, under a lock).
        config: Page limits.
    """

    def __init__(self, source: PipelineSource, config: WebConfig | None = None) -> None:
        if not isinstance(source, CogView2Pipeline) and not callable(source):
            raise ValueError(
                "expected a CogView2Pipeline or a function returning one, got "
                f"{type(source).__name__}"
            )
        self.config = config or WebConfig()
        if self.config.default_style is not None and self.config.default_style not in RECIPES:
            raise ValueError(
                f"WebConfig.default_style {self.config.default_style!r} is not one of "
                f"{sorted(RECIPES)}"
            )
        self._source = source
        self._pipe = source if isinstance(source, CogView2Pipeline) else None
        self._lock = threading.Lock()

    @property
    def pipe(self) -> CogView2Pipeline:
        """The pipeline (built on first access when a factory was given)."""
        if self._pipe is None:
            with self._lock:
                if self._pipe is None:
                    pipe = self._source()  # type: ignore[operator]
                    if not isinstance(pipe, CogView2Pipeline):
                        raise TypeError(
                            f"the pipeline factory returned {type(pipe).__name__}, "
                            "not a CogView2Pipeline"
                        )
                    self._pipe = pipe
        return self._pipe

    def _generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.pipe.device).manual_seed(seed)

    def _check_style(self, style: str) -> str:
        if style not in RECIPES:
            raise ValueError(f"Unknown style {style!r}; choose one of {sorted(RECIPES)}.")
        return style

    def generate(
        self,
        prompt: str | None,
        style: str,
        num_images: float | int | None,
        seed: float | int | None,
        randomize: bool,
        guidance: float | int | None = None,
    ) -> tuple[GalleryItems, int]:
        """Text → images through all three stages (coarse, direct SR, iterative SR).

        Args:
            prompt: Raw prompt, English or Chinese.
            style: A name of `cogview2.RECIPES`.
            num_images: 1 to ``config.max_images``.
            seed: Seed used when ``randomize`` is False.
            randomize: Draw a fresh seed.
            guidance: Stage-1 classifier-free guidance scale (1 = off); None: the weights' own.

        Returns:
            ``(items, seed)``: one ``(image, prompt)`` pair per image (``image_size`` px RGB)
            and the seed actually used.
        """
        text = check_prompt(prompt)
        style = self._check_style(style)
        count = check_count(num_images, maximum=self.config.max_images)
        used = resolve_seed(seed, randomize, max_seed=self.config.max_seed)
        pipe = self.pipe
        pipe.encode_prompt(text, style)  # refuses an over-long prompt before any sampling
        # the pipeline checks the scale before it samples
        out = pipe(
            text,
            num_images=count,
            style=style,
            generator=self._generator(used),
            guidance_scale=guidance,
        )
        return [(image, text) for image in out.images], used  # type: ignore[union-attr]

    def prepare_image(self, path: str | None) -> Image.Image:
        """An uploaded file as the square RGB image the pipeline takes (``image_size`` px)."""
        image = load_upload(
            path,
            max_side=self.config.max_upload_side,
            max_bytes=self.config.max_upload_bytes,
        )
        return square_resize(image, self.pipe.image_size)

    def complete(
        self,
        image: Image.Image | None,
        box: Box,
        prompt: str | None,
        style: str,
        num_images: float | int | None,
        seed: float | int | None,
        randomize: bool,
        fill: str | None = None,
    ) -> tuple[GalleryItems, int]:
        """Regenerate ``box`` of ``image`` guided by ``prompt`` (text-guided completion).

        Args:
            image: RGB ``image_size`` px image (from `prepare_image`), or None if none uploaded.
            box: ``(top, left, bottom, right)`` fractions, rows first.
            prompt: Text describing the whole image.
            style: A name of `cogview2.RECIPES` ("none" in the release's completion script).
            num_images: 1 to ``config.max_images``.
            seed: Seed used when ``randomize`` is False.
            randomize: Draw a fresh seed.
            fill: ``"infill"`` or ``"compose"`` (`CogView2Pipeline.complete`); None: the
                weights' own.

        Returns:
            ``(items, seed)`` as in `generate`.
        """
        if image is None:
            raise ValueError("Upload an image first.")
        if fill is not None and fill not in COMPLETION_FILLS:
            raise ValueError(f"Choose a fill of {list(COMPLETION_FILLS)}, got {fill!r}.")
        text = check_prompt(prompt)
        style = self._check_style(style)
        count = check_count(num_images, maximum=self.config.max_images)
        used = resolve_seed(seed, randomize, max_seed=self.config.max_seed)
        pipe = self.pipe
        if image.size != (pipe.image_size, pipe.image_size):
            image = square_resize(image.convert("RGB"), pipe.image_size)
        out = pipe.complete(image, box, text, num_images=count, style=style, fill=fill,
                            generator=self._generator(used))  # fmt: skip
        return [(im, text) for im in out.images], used  # type: ignore[union-attr]

    def caption(
        self, path: str | None, language: Literal["english", "chinese"] | str
    ) -> tuple[Image.Image, str]:
        """Describe an uploaded image.

        Returns:
            ``(image, caption)``: the square image that was captioned and its caption.
        """
        if language not in ("english", "chinese"):
            raise ValueError(f"Choose English or Chinese, got {language!r}.")
        image = self.prepare_image(path)
        seed = resolve_seed(None, True, max_seed=self.config.max_seed)
        (text,) = self.pipe.caption(image, language=language, generator=self._generator(seed))  # type: ignore[arg-type]
        return image, text
