"""Result dataclasses of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image
from torch import Tensor


@dataclass
class CogView2Output:
    """Result of `CogView2Pipeline.__call__` and `CogView2Pipeline.complete`.

    Attributes:
        images: ``list[PIL.Image]`` (output_type "pil"), a float32 (N, 3, S, S) tensor in [0, 1]
            ("pt"), or None ("tokens").
        tokens: (N, g, g) long ids of the last stage that ran (g = 20 after "coarse", 60 after
            "dsr"/"itersr").
        low_res_tokens: (N, 20, 20) long ids of stage 1.
        scores: (N,) float32 caption log-likelihood of the raw prompt given each image (inverse
            prompting, higher is better), or None when not computed.
        stage_seconds: Stage name (``"coarse"``, ``"dsr"``, ``"itersr"``) → wall seconds it
            ran in this call (text → image calls), or None.
    """

    images: list[Image.Image] | Tensor | None
    tokens: Tensor
    low_res_tokens: Tensor
    scores: Tensor | None = None
    stage_seconds: dict[str, float] | None = None
