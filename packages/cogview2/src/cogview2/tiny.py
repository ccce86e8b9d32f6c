"""A tiny random-weight pipeline for tests, demos and benchmarks (built in about a second)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from cluster_sampling import cluster_codebook
from coglm_core.config import CogLMConfig
from coglm_core.transformer import CogLM
from icetk import HVQVAE, IceTokenizer, ImageTokenizer, TextTokenizer, TextTrainConfig, VQVAEConfig
from icetk.train_text import train_text_tokenizer

from .config import PipelineConfig
from .layout import coglm_id_fields
from .models.config import DSRConfig, ITERSRConfig
from .models.sr import DirectSuperResolution, IterativeSuperResolution, tile_extra_positions
from .pipeline import CogView2Pipeline
from .recipes import RECIPES

CORPUS: tuple[str, ...] = (
    "a red apple on a white table",
    "a cute panda eating bamboo in the forest",
    "a small cat sleeping on the sofa",
    "a blue car parked near the old house",
    "an oil painting of mountains and a lake at sunset",
    "a smiling face with sunglasses, twemoji style",
    "红苹果 熊猫 小猫 汽车 房子 山 湖 日落 笑脸",
    "一只可爱的熊猫在森林里吃竹子",
    "一个红色的苹果放在白色的桌子上",
)
"""Training text of the tiny sentencepiece model (plus every style template's suffix)."""


def tiny_tokenizer(*, num_codes: int = 64, seed: int = 0) -> IceTokenizer:
    """Sentencepiece trained on `CORPUS` + a random tiny VQ-VAE (compression 8)."""
    lines = list(CORPUS) + [r.format("").strip() for r in RECIPES.values() if r.format("").strip()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        path.write_text("\n".join(lines * 4) + "\n", encoding="utf-8")
        model, layout = train_text_tokenizer(
            path, num_image_tokens=num_codes, config=TextTrainConfig(vocab_size=400, num_threads=1)
        )
    torch.manual_seed(seed)
    vq = HVQVAE(VQVAEConfig.tiny(num_codes=num_codes)).eval()
    return IceTokenizer(TextTokenizer(model, layout), ImageTokenizer(vq))


def tiny_coglm_config(tokenizer: IceTokenizer, **overrides: object) -> CogLMConfig:
    """A 2-layer, 32-wide CogLM whose ids match ``tokenizer`` (4×4 low-res grid)."""
    base = dict(
        num_layers=2,
        hidden_size=32,
        num_attention_heads=4,
        max_sequence_length=96,
        image_grid_size=4,
        boi_position=64,
        image_position_offset=65,
        **coglm_id_fields(tokenizer.layout),
        hidden_dropout=0.0,
        attention_dropout=0.0,
        sequence_length=32,
        patch_size=2,
    )
    base.update(overrides)
    return CogLMConfig(**base)  # type: ignore[arg-type]


def build_tiny_pipeline(
    *,
    seed: int = 0,
    num_codes: int = 64,
    num_clusters: int = 8,
    share_dsr_base: bool = True,
    backend: str | None = None,
) -> CogView2Pipeline:
    """Random-weight pipeline: 4×4 → 12×12 tokens, 32 px → 96 px images, float32 on CPU.

    Args:
        seed: Seeds every random weight.
        num_codes: VQ codebook size.
        num_clusters: K-means clusters of the codebook.
        share_dsr_base: DSR reuses the stage-1 transformer object (as when the DSR checkpoint's
            frozen base equals CogLM's); ITERSR always has its own.
        backend: localattn backend of the SR models.
    """
    tokenizer = tiny_tokenizer(num_codes=num_codes, seed=seed)
    cfg = tiny_coglm_config(tokenizer)
    torch.manual_seed(seed)
    coglm = CogLM(cfg)
    dsr_base = coglm if share_dsr_base else CogLM(cfg)
    dsr = DirectSuperResolution(
        dsr_base, DSRConfig(text_slots=48, low_grid=4, high_grid=12), backend=backend
    )
    itersr = IterativeSuperResolution(
        CogLM(cfg), ITERSRConfig(text_slots=8, high_grid=12), backend=backend
    )
    for model in (dsr, itersr):
        tile_extra_positions(model.base, model.extra_positions, 4, 12)
    labels = cluster_codebook(tokenizer.codebook, num_clusters, seed=seed)
    return CogView2Pipeline(
        tokenizer, coglm, dsr, itersr, labels, PipelineConfig(caption_max_length=8)
    )
