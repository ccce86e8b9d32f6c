"""The demo weights shipped inside the package: they load by default and draw a 480 px image."""

from __future__ import annotations

import json

import torch

from cogview2 import CogView2Pipeline
from cogview2._commands import DEFAULT_WEIGHTS
from cogview2.web.server import pipeline_factory

MAX_MEGABYTES = 40  # the data/training issue's budget for all shipped weights


def test_demo_weights_are_small_fp16_and_plain_prompted() -> None:
    files = [p for p in DEFAULT_WEIGHTS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_MEGABYTES * 10**6
    manifest = json.loads((DEFAULT_WEIGHTS / "pipeline.json").read_text(encoding="utf-8"))
    assert manifest["config"]["default_style"] == "plain"
    # DSR fine-tuned its own copy of CogLM ([dsr] train_base); ITERSR has its own too
    assert manifest["dsr"]["shares_base"] is None and manifest["itersr"]["shares_base"] is None
    config = manifest["config"]
    assert config["default_stages"] == ["coarse", "dsr"] and config["caption_end"] is True


def test_default_weights_generate_one_image_end_to_end() -> None:
    pipe = pipeline_factory()()  # no --weights, no environment variable: the demo weights
    assert pipe.coglm.transformer.word_embeddings.weight.dtype == torch.float16
    out = pipe(
        "red apple", num_images=1, generator=torch.Generator().manual_seed(0), progress=False
    )
    image = out.images[0]
    assert image.size == (pipe.image_size, pipe.image_size) == (480, 480)
    pixels = torch.tensor(list(image.convert("L").resize((16, 16)).tobytes()), dtype=torch.float)
    assert pixels.std() > 5  # a picture, not a flat fill
    again = CogView2Pipeline.from_pretrained(DEFAULT_WEIGHTS, max_memory="1GB")(
        "red apple", num_images=1, generator=torch.Generator().manual_seed(0), progress=False,
        output_type="tokens",
    )  # fmt: skip
    assert torch.equal(again.tokens, out.tokens)  # any memory plan, the same picture


def test_web_page_runs_on_the_demo_weights() -> None:
    """`cogview2 serve` with no arguments: the page's pipeline is the demo weights, its style
    menu opens on their plain-prompt style, and its generate handler returns 480 px images."""
    import pytest

    pytest.importorskip("gradio")
    from cogview2.web.app import build_app
    from cogview2.web.handlers import PageHandlers

    source = pipeline_factory()
    handlers = PageHandlers(source)
    assert handlers.pipe.config.default_style == "plain"
    build_app(handlers.pipe)
    items, seed = handlers.generate("熊猫", "plain", 1, 7, False)
    assert seed == 7 and items[0][0].size == (480, 480) and items[0][1] == "熊猫"


def test_default_weights_follow_the_prompt_in_both_languages() -> None:
    """The demo CogLM learnt which picture a name means: "熊猫" and "panda" (different seeds)
    give the same stage-1 picture, "pizza" another one."""
    pipe = CogView2Pipeline.from_pretrained(DEFAULT_WEIGHTS)

    def coarse(prompt: str, seed: int) -> torch.Tensor:
        out = pipe(prompt, num_images=1, stages=("coarse",), output_type="tokens",
                   generator=torch.Generator().manual_seed(seed), progress=False)  # fmt: skip
        return out.tokens.flatten()

    panda_zh, panda_en, pizza = coarse("熊猫", 0), coarse("panda", 1), coarse("pizza", 0)
    assert (panda_zh == panda_en).float().mean() > 0.9
    assert (panda_zh == pizza).float().mean() < 0.3
