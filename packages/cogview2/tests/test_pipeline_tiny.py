"""End-to-end behaviour of the tiny random-weight pipeline."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from cogview2 import CogView2Pipeline
from cogview2.lopar import tiled_order
from cogview2.stages.super_resolution import iterative_super_resolution


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("num_images", [1, 5])
def test_generation_gives_the_right_number_and_size_of_images(tiny_pipe, num_images: int) -> None:
    out = tiny_pipe("a red apple", num_images=num_images, generator=_gen(0), progress=False)
    assert len(out.images) == num_images  # 5 is not a multiple of the SR batch of 4
    assert all(im.size == (96, 96) and im.mode == "RGB" for im in out.images)
    assert out.tokens.shape == (num_images, 12, 12)
    assert out.low_res_tokens.shape == (num_images, 4, 4)
    assert out.scores.shape == (num_images,) and torch.isfinite(out.scores).all()
    assert int(out.tokens.max()) < 64 and int(out.tokens.min()) >= 0


def test_same_seed_same_tokens_different_seed_different(tiny_pipe) -> None:
    kw = dict(num_images=3, progress=False, output_type="tokens")
    a = tiny_pipe("a cute panda", generator=_gen(7), **kw)
    b = tiny_pipe("a cute panda", generator=_gen(7), **kw)
    c = tiny_pipe("a cute panda", generator=_gen(8), **kw)
    assert a.images is None
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.low_res_tokens, b.low_res_tokens)
    assert not torch.equal(a.tokens, c.tokens)


def test_stage_subsets_and_pt_output(tiny_pipe) -> None:
    low = tiny_pipe(
        "a cat", stages=("coarse",), output_type="pt", generator=_gen(1), progress=False
    )
    assert low.images.shape == (1, 3, 96, 96) and low.tokens.shape == (1, 4, 4)
    assert float(low.images.min()) >= 0.0 and float(low.images.max()) <= 1.0
    dsr = tiny_pipe(
        "a cat", stages=("coarse", "dsr"), output_type="tokens", generator=_gen(1), progress=False
    )
    assert dsr.tokens.shape == (1, 12, 12)
    assert torch.equal(dsr.low_res_tokens, low.low_res_tokens)  # same seed, same stage-1 draws


def test_post_select_sorts_by_score(tiny_pipe) -> None:
    out = tiny_pipe(
        "a cat",
        num_images=4,
        stages=("coarse",),
        output_type="tokens",
        generator=_gen(2),
        progress=False,
        post_select=True,
    )
    assert torch.all(out.scores[:-1] >= out.scores[1:])


def test_candidates_keep_the_best_scored_stage1_draws(tiny_pipe) -> None:
    """Stage 1 draws ``candidates`` images; the ``num_images`` best by caption score go on."""
    kw = dict(output_type="tokens", progress=False)
    pool = tiny_pipe("a cat", num_images=6, stages=("coarse",), generator=_gen(5), **kw)
    out = tiny_pipe("a cat", num_images=2, candidates=6, generator=_gen(5), **kw)
    best = torch.argsort(pool.scores, descending=True, stable=True)[:2]
    assert torch.equal(out.low_res_tokens, pool.low_res_tokens[best])
    torch.testing.assert_close(out.scores, pool.scores[best])
    assert out.tokens.shape == (2, 12, 12)


@pytest.mark.parametrize("candidates", [1, 2.5, True])
def test_candidates_must_be_an_int_at_least_num_images(tiny_pipe, candidates) -> None:
    with pytest.raises(ValueError, match="candidates must be None or an int >= num_images"):
        tiny_pipe("a cat", num_images=2, candidates=candidates, progress=False)


def test_lopar_keeps_context_and_changes_only_scheduled_positions(tiny_pipe) -> None:
    itersr = tiny_pipe.itersr
    high = torch.randint(0, 64, (2, 144), generator=_gen(3))
    seen: list[tuple[int, torch.Tensor]] = []
    out = iterative_super_resolution(
        itersr,
        [70, 71, 72],
        high,
        generator=_gen(4),
        on_pass=lambda t, m: seen.append((t, m.clone())),
    )
    order = tiled_order(12).flatten()
    assert [t for t, _ in seen] == [1, 2, 3, 4, 5, 6]
    for t, mask in seen:
        assert torch.equal(mask[0].flatten(), order >= t)
    kept = order <= 0
    assert torch.equal(out[:, kept], high[:, kept])


def test_completion_keeps_context_tokens_bit_identical(tiny_pipe) -> None:
    image = tiny_pipe("a red apple", generator=_gen(5), progress=False).images[0]
    box = (0.25, 0.25, 0.75, 0.5)
    out = tiny_pipe.complete(
        image,
        box,
        "a red apple",
        num_images=2,
        generator=_gen(6),
        output_type="tokens",
        progress=False,
    )
    original = tiny_pipe.tokenizer.encode_image(image, compression=8)[0]  # (12, 12)
    inside = torch.zeros(12, 12, dtype=torch.bool)
    inside[3:9, 3:6] = True
    assert out.tokens.shape == (2, 12, 12)
    assert torch.equal(out.tokens[:, ~inside], original[~inside].expand(2, -1))
    assert not torch.equal(out.tokens[:, inside], original[inside].expand(2, -1))


def test_stage_bar_names_the_running_stage_and_counts_the_finished_ones(tiny_pipe, capsys) -> None:
    tiny_pipe("a cat", generator=_gen(0), progress=True, score=False)
    err = capsys.readouterr().err.replace("\r", "\n")
    names = ["stage 1: text → low-res tokens", "direct super-resolution",
             "iterative super-resolution (LoPAR)"]  # fmt: skip
    shown = re.findall(r"^(.*): (\d)/3 stages done", err, flags=re.MULTILINE)
    assert shown, err
    for label, done in shown:
        # the stage that just finished (its number = done) or the one now running (done + 1)
        allowed = {names[int(done) - 1] if int(done) else None, names[min(int(done), 2)]}
        assert label in allowed, (label, done)
    assert shown[-1] == (names[2], "3")


def _pixels(image: Image.Image) -> torch.Tensor:
    """(H, W, 3) uint8 of an RGB image."""
    return torch.from_numpy(np.asarray(image).copy())


def test_completion_pastes_the_box_into_the_original_pixels(tiny_pipe) -> None:
    """Pixels ``feather`` px or more from the box are the input's own, bit for bit; inside the
    box the picture is the decoded one; ``keep_outside=False`` gives the whole decoded picture."""
    torch.manual_seed(0)
    image = Image.fromarray((torch.rand(96, 96, 3) * 255).to(torch.uint8).numpy(), mode="RGB")
    box, feather = (0.25, 0.25, 0.75, 0.5), 4

    def complete(**kwargs):
        return tiny_pipe.complete(
            image, box, "a red apple", num_images=2, generator=_gen(6), progress=False, **kwargs
        )

    pasted, raw = complete(), complete(keep_outside=False)
    assert torch.equal(pasted.tokens, raw.tokens)
    original = _pixels(image)
    near = torch.zeros(96, 96, dtype=torch.bool)
    near[24 - feather + 1 : 72 + feather - 1, 24 - feather + 1 : 48 + feather - 1] = True
    for got, whole in zip(pasted.images, raw.images, strict=True):
        px = _pixels(got)
        dec = _pixels(whole)
        assert torch.equal(px[~near], original[~near])  # farther than the feather: unchanged
        assert torch.equal(px[24:72, 24:48], dec[24:72, 24:48])  # the box: the decoded picture
        assert not torch.equal(dec[~near], original[~near])  # which the paste is needed for
    hard = complete(feather=0, output_type="pt")
    x = original.permute(2, 0, 1) / 255.0
    outside = torch.ones(96, 96, dtype=torch.bool)
    outside[24:72, 24:48] = False
    assert torch.equal(hard.images[:, :, outside], x[:, outside].expand(2, -1, -1))
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="feather must be an int >= 0"):
            tiny_pipe.complete(image, box, "a red apple", feather=bad, progress=False)


def test_feathered_alpha_ramps_outside_the_box() -> None:
    from cogview2.stages.completion import feathered_box_alpha

    a = feathered_box_alpha((0.25, 0.25, 0.5, 0.5), 16, 2)  # box pixels [4, 8) × [4, 8)
    assert a[4:8, 4:8].eq(1).all() and a.shape == (16, 16)
    assert a[8, 5] == 0.5 and a[3, 3] == 0.5 and a[9, 5] == 0 and a[2, 5] == 0
    assert a[:2].eq(0).all() and a[10:].eq(0).all()


def test_caption_stops_at_the_pad_only_for_models_trained_to_end(tiny_pipe, monkeypatch) -> None:
    """``PipelineConfig.caption_end``: the pad is allowed and ends the caption; without it
    (the release's models) nothing ends a caption before its length."""
    import dataclasses

    import cogview2.pipeline as module

    calls = []
    real = module.generate_caption_ids

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "generate_caption_ids", spy)
    image = Image.new("RGB", (96, 96), (200, 30, 30))
    pad = tiny_pipe.coglm.config.pad_id
    tiny_pipe.caption(image, generator=_gen(0))
    assert calls[-1]["stop_ids"] == ()
    config = tiny_pipe.config
    monkeypatch.setattr(tiny_pipe, "config", dataclasses.replace(config, caption_end=True))
    tiny_pipe.caption(image, generator=_gen(0))
    assert calls[-1]["stop_ids"] == (pad,) and calls[-1]["allowed_ids"][pad]
    english = calls[-1]["allowed_ids"].clone()
    english[pad] = calls[0]["allowed_ids"][pad]
    assert torch.equal(english, calls[0]["allowed_ids"])  # otherwise the same language mask


def test_caption_returns_text(tiny_pipe) -> None:
    image = Image.new("RGB", (96, 96), (200, 30, 30))
    caps = tiny_pipe.caption(image, language="chinese", num_captions=2, generator=_gen(0))
    assert len(caps) == 2 and all(isinstance(c, str) for c in caps)
    lay = tiny_pipe.tokenizer.layout
    ids = tiny_pipe.tokenizer.encode_text(caps[0]) if caps[0] else []
    assert all(lay.language_of(i) in ("common", "chinese") for i in ids)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(prompt=""), "prompt is empty"),
        (dict(prompt="   "), "prompt is empty"),
        (dict(prompt="apple " * 200), "at most"),
        (dict(prompt="x", style="anime"), "unknown style"),
        (dict(prompt="x", stages=("dsr",)), "stages must be one of"),
        (dict(prompt="x", output_type="png"), "output_type"),
        (dict(prompt="x", num_images=0), "num_images"),
        (dict(prompt="x", guidance_scale=-1.0), "guidance_scale must be >= 0"),
        (dict(prompt="x", guidance_scale=float("nan")), "guidance_scale must be a finite"),
        (dict(prompt="x", guidance_scale=True), "guidance_scale must be a finite"),
    ],
)
def test_bad_generation_input(tiny_pipe, kwargs, match) -> None:
    prompt = kwargs.pop("prompt")
    with pytest.raises(ValueError, match=match):
        tiny_pipe(prompt, progress=False, **kwargs)


@pytest.mark.parametrize(
    ("image", "box", "match"),
    [
        (Image.new("RGB", (50, 96)), (0.2, 0.2, 0.6, 0.6), "expected a square"),
        (Image.new("RGBA", (96, 96)), (0.2, 0.2, 0.6, 0.6), "convert it"),
        (torch.rand(3, 64, 64), (0.2, 0.2, 0.6, 0.6), "tensor must be"),
        (Image.new("RGB", (96, 96)), (0.2, 0.2, 1.3, 0.6), "box"),
        (Image.new("RGB", (96, 96)), (0.6, 0.2, 0.2, 0.6), "box"),
        (Image.new("RGB", (96, 96)), (0.5, 0.5, 0.501, 0.501), "covers no"),
    ],
)
def test_bad_completion_input(tiny_pipe, image, box, match) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_pipe.complete(image, box, "a cat", progress=False)


def test_to_moves_in_place_and_keeps_the_shared_base(tiny_pipe) -> None:
    assert tiny_pipe.to("cpu", torch.float32) is tiny_pipe
    assert tiny_pipe.dsr.base is tiny_pipe.coglm and tiny_pipe.device == torch.device("cpu")
    assert tiny_pipe.max_prompt_tokens == 47  # min(109, boi_position 64, DSR text_slots 48 - 1)


def test_progress_bar_names_each_stage(tiny_pipe, monkeypatch) -> None:
    """The bar's description names the running stage (the web page shows it via track_tqdm)."""
    import cogview2.progress as progress_module
    from cogview2.stage_table import STAGE_NAMES

    seen: list[str] = []

    class RecordingBar:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def set_description(self, desc: str) -> None:
            seen.append(desc)

        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(progress_module, "tqdm", RecordingBar)
    tiny_pipe("a red apple", num_images=1, generator=_gen(0), output_type="tokens", progress=False)
    assert seen == [STAGE_NAMES["coarse"], STAGE_NAMES["dsr"], STAGE_NAMES["itersr"]]


def test_default_style_comes_from_the_pipeline_config(tiny_pipe) -> None:
    import dataclasses

    assert tiny_pipe.encode_prompt("red apple") == tiny_pipe.encode_prompt("red apple", "mainbody")
    plain = dataclasses.replace(tiny_pipe.config, default_style="none")
    pipe = CogView2Pipeline(tiny_pipe.tokenizer, tiny_pipe.coglm, tiny_pipe.dsr, tiny_pipe.itersr,
                            tiny_pipe.cluster_labels, plain)  # fmt: skip
    assert pipe.encode_prompt("red apple") == tiny_pipe.encode_prompt("red apple", "none")
    assert pipe.encode_prompt("red apple") != pipe.encode_prompt("red apple", "mainbody")


def test_guidance_scale_defaults_to_the_pipeline_config(tiny_pipe) -> None:
    """Stage 1 is guided by the text-free sequence; the config's scale is the default, 1 = off."""
    import dataclasses

    kw = dict(num_images=2, stages=("coarse",), output_type="tokens", progress=False)
    plain = tiny_pipe("a cat", generator=_gen(3), **kw)
    assert torch.equal(tiny_pipe("a cat", generator=_gen(3), guidance_scale=1.0, **kw).tokens,
                       plain.tokens)  # fmt: skip
    guided = tiny_pipe("a cat", generator=_gen(3), guidance_scale=4.0, **kw)
    assert not torch.equal(guided.tokens, plain.tokens)
    config = dataclasses.replace(tiny_pipe.config, guidance_scale=4.0)
    pipe = CogView2Pipeline(tiny_pipe.tokenizer, tiny_pipe.coglm, tiny_pipe.dsr, tiny_pipe.itersr,
                            tiny_pipe.cluster_labels, config)  # fmt: skip
    assert torch.equal(pipe("a cat", generator=_gen(3), **kw).tokens, guided.tokens)
    assert torch.equal(pipe("a cat", generator=_gen(3), guidance_scale=1.0, **kw).tokens,
                       plain.tokens)  # fmt: skip
    with pytest.raises(ValueError, match="guidance_scale"):
        dataclasses.replace(tiny_pipe.config, guidance_scale=-0.5)


def test_the_stage_table_drives_the_pipeline_placer_and_plans(tiny_pipe) -> None:
    """One declared table: its order is the pipeline's, its models are what each stage places,
    its batch fields are the batch sizes each stage is given."""
    from cogview2 import STAGE_TABLE, STAGES
    from cogview2.memory import STAGE_ORDER
    from cogview2.stage_table import stage_spec

    assert (
        STAGES == tuple(s.name for s in STAGE_TABLE) == STAGE_ORDER == ("coarse", "dsr", "itersr")
    )
    for spec in STAGE_TABLE:
        assert getattr(tiny_pipe, spec.model) is not None
        assert isinstance(getattr(tiny_pipe.config, spec.batch_field), int)
    with pytest.raises(ValueError, match="unknown stage 'sr'"):
        stage_spec("sr")
    seen = []
    original = tiny_pipe._run_stage

    def spy(name, bar, run):
        def wrapped(model, batch):
            spec = stage_spec(name)
            seen.append((name, model is getattr(tiny_pipe, spec.model), batch))
            return run(model, batch)

        return original(name, bar, wrapped)

    tiny_pipe._run_stage = spy
    try:
        tiny_pipe("a cat", generator=_gen(0), progress=False, score=False)
    finally:
        del tiny_pipe._run_stage
    cfg = tiny_pipe.config
    assert seen == [("coarse", True, cfg.stage1_batch), ("dsr", True, cfg.sr_batch),
                    ("itersr", True, cfg.sr_batch)]  # fmt: skip


def test_check_inputs_validates_every_argument_once(tiny_pipe) -> None:
    stages, scale = tiny_pipe.check_inputs("a cat", stages=["coarse", "dsr"], guidance_scale=2)
    assert stages == ("coarse", "dsr") and scale == 2.0
    assert tiny_pipe.check_inputs("a cat")[1] == tiny_pipe.config.guidance_scale
    for kwargs, match in (
        ({"num_images": 0}, "num_images"),
        ({"stages": ("dsr",)}, "stages must be one of"),
        ({"output_type": "jpg"}, "output_type"),
        ({"candidates": 1, "num_images": 2}, "candidates"),
        ({"guidance_scale": -1.0}, "guidance_scale"),
    ):
        with pytest.raises(ValueError, match=match):
            tiny_pipe.check_inputs("a cat", **kwargs)
    with pytest.raises(ValueError, match="prompt is empty"):
        tiny_pipe.check_inputs("  ")
    with pytest.raises(ValueError, match="num_images"):
        tiny_pipe.complete(Image.new("RGB", (96, 96)), (0, 0, 0.5, 0.5), "a cat", num_images=0)


def test_default_stages_come_from_the_pipeline_config(tiny_pipe) -> None:
    import dataclasses

    from cogview2 import PipelineConfig

    assert tiny_pipe.check_inputs("a cat")[0] == ("coarse", "dsr", "itersr")
    short = dataclasses.replace(tiny_pipe.config, default_stages=("coarse", "dsr"))
    pipe = CogView2Pipeline(tiny_pipe.tokenizer, tiny_pipe.coglm, tiny_pipe.dsr, tiny_pipe.itersr,
                            tiny_pipe.cluster_labels, short)  # fmt: skip
    out = pipe("a cat", generator=_gen(0), progress=False, output_type="tokens", score=False)
    want = pipe("a cat", stages=("coarse", "dsr"), generator=_gen(0), progress=False,
                output_type="tokens", score=False)  # fmt: skip
    assert torch.equal(out.tokens, want.tokens)
    assert pipe.check_inputs("a cat", stages=("coarse", "dsr", "itersr"))[0][-1] == "itersr"
    assert PipelineConfig.from_dict({"default_stages": ["coarse"]}).default_stages == ("coarse",)
    with pytest.raises(ValueError, match="default_stages must be one of"):
        PipelineConfig(default_stages=("dsr",))


def test_super_resolve_redraws_a_call_from_its_stage1_tokens(tiny_pipe) -> None:
    """``super_resolve`` runs the SR stages of a call: with the generator in the state stage 1
    left it in, it gives the call's tokens, bit for bit."""
    stages = ("coarse", "dsr", "itersr")
    full = tiny_pipe("a red apple", num_images=2, stages=stages, output_type="tokens",
                     progress=False, generator=torch.Generator().manual_seed(3))  # fmt: skip
    g = torch.Generator().manual_seed(3)
    low = tiny_pipe("a red apple", num_images=2, stages=("coarse",), output_type="tokens",
                    progress=False, generator=g).tokens  # fmt: skip
    assert torch.equal(low, full.low_res_tokens)
    again = tiny_pipe.super_resolve("a red apple", low, stages=stages, generator=g,
                                    output_type="tokens")  # fmt: skip
    assert torch.equal(again.tokens, full.tokens) and torch.equal(again.low_res_tokens, low)
    with pytest.raises(ValueError, match="low_res_tokens must be"):
        tiny_pipe.super_resolve("a red apple", low[:, :3])


def test_completion_by_composition_draws_the_prompt_into_the_box_only(tiny_pipe) -> None:
    """``fill="compose"``: the box holds the pipeline's own drawing of the prompt fitted into it;
    every pixel outside the box is the input's, the tokens outside its cells the encoded input's."""
    torch.manual_seed(0)
    image = Image.fromarray((torch.rand(96, 96, 3) * 255).to(torch.uint8).numpy(), mode="RGB")
    box = (0.25, 0.25, 0.75, 0.5)  # 48 × 24 px
    kw = dict(num_images=2, progress=False)
    out = tiny_pipe.complete(image, box, "a red apple", fill="compose", generator=_gen(6),
                             output_type="pt", **kw)  # fmt: skip
    style = tiny_pipe.config.completion_style  # the recipe completion draws with
    drawn = tiny_pipe("a red apple", style=style, generator=_gen(6), output_type="pt", **kw).images
    from cogview2.stages.composition import compose_into_box

    x = _pixels(image).permute(2, 0, 1)[None] / 255.0
    assert torch.equal(out.images, compose_into_box(x, drawn, box))  # the prompt's own drawing
    outside = torch.ones(96, 96, dtype=torch.bool)
    outside[24:72, 24:48] = False
    assert torch.equal(out.images[:, :, outside], x[0][:, outside].expand(2, -1, -1))
    original = tiny_pipe.tokenizer.encode_image(image, compression=8)[0]  # (12, 12)
    cells = torch.zeros(12, 12, dtype=torch.bool)
    cells[3:9, 3:6] = True
    assert out.tokens.shape == (2, 12, 12) and out.low_res_tokens.shape == (2, 4, 4)
    assert torch.equal(out.tokens[:, ~cells], original[~cells].expand(2, -1))
    raw = tiny_pipe.complete(image, box, "a red apple", fill="compose", generator=_gen(6),
                             keep_outside=False, **kw)  # fmt: skip
    assert torch.equal(raw.tokens, out.tokens)  # keep_outside=False: the tokens decoded
    with pytest.raises(ValueError, match=r"fill must be one of \['infill', 'compose'\]"):
        tiny_pipe.complete(image, box, "a red apple", fill="paste", progress=False)
