"""The page's actions on the tiny random-weight pipeline (no Gradio, no browser)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cogview2.web.config import WebConfig
from cogview2.web.handlers import PageHandlers


def _pixels(images):
    return [np.asarray(im) for im in images]


def test_generate_returns_the_seed_that_reproduces_it(tiny_pipe):
    handlers = PageHandlers(tiny_pipe)
    items, seed = handlers.generate("  a red apple ", "flat", 1.0, 123, True)
    assert 0 <= seed <= WebConfig().max_seed
    assert [caption for _, caption in items] == ["a red apple"]
    assert items[0][0].size == (tiny_pipe.image_size, tiny_pipe.image_size)
    again = tiny_pipe(
        "a red apple",
        num_images=1,
        style="flat",
        generator=torch.Generator(device=tiny_pipe.device).manual_seed(seed),
        progress=False,
    )
    np.testing.assert_array_equal(_pixels(again.images)[0], _pixels([items[0][0]])[0])


def test_generate_passes_the_guidance_scale(tiny_pipe):
    items, seed = PageHandlers(tiny_pipe).generate("a cat", "none", 1, 5, False, 4.0)
    again = tiny_pipe(
        "a cat",
        style="none",
        generator=torch.Generator(device=tiny_pipe.device).manual_seed(seed),
        progress=False,
        guidance_scale=4.0,
    )
    np.testing.assert_array_equal(_pixels(again.images)[0], _pixels([items[0][0]])[0])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", "mainbody", 1, 0, False), "Enter a prompt"),
        (("apple", "cubism", 1, 0, False), "Unknown style"),
        (("apple", "mainbody", 99, 0, False), "number of images"),
        (("apple", "mainbody", 1, -5, False), "seed"),
        (("apple " * 200, "mainbody", 1, 0, False), "tokens"),
        (("apple", "mainbody", 1, 0, False, -1), "guidance_scale must be >= 0"),
    ],
)
def test_generate_refuses_bad_input_before_sampling(tiny_pipe, args, match):
    with pytest.raises(ValueError, match=match):
        PageHandlers(tiny_pipe).generate(*args)


def test_factory_is_called_once_and_checked(tiny_pipe):
    calls = []

    def factory():
        calls.append(1)
        return tiny_pipe

    handlers = PageHandlers(factory)
    assert not calls
    assert handlers.pipe is tiny_pipe and handlers.pipe is tiny_pipe and len(calls) == 1
    with pytest.raises(TypeError, match="not a CogView2Pipeline"):
        _ = PageHandlers(lambda: "weights").pipe
    with pytest.raises(ValueError, match="CogView2Pipeline"):
        PageHandlers(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default_style"):
        PageHandlers(tiny_pipe, WebConfig(default_style="cubism"))


def test_completion_and_caption_from_uploads(tiny_pipe, tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(path)
    handlers = PageHandlers(tiny_pipe)
    image = handlers.prepare_image(str(path))
    assert image.size == (tiny_pipe.image_size, tiny_pipe.image_size)
    items, seed = handlers.complete(image, (0.25, 0.25, 0.75, 0.75), "a cat", "none", 1, 5, False)
    assert seed == 5 and len(items) == 1 and items[0][1] == "a cat"
    assert items[0][0].size == image.size
    with pytest.raises(ValueError, match="covers no"):  # a box smaller than one token cell
        handlers.complete(image, (0.0, 0.0, 0.01, 0.01), "a cat", "none", 1, 5, False)
    composed, _ = handlers.complete(image, (0.25, 0.25, 0.75, 0.75), "a cat", "none", 1, 5, False,
                                    "compose")  # fmt: skip
    assert composed[0][0].tobytes() != items[0][0].tobytes()  # the fill reaches the pipeline
    with pytest.raises(ValueError, match="Choose a fill of"):
        handlers.complete(image, (0.25, 0.25, 0.75, 0.75), "a cat", "none", 1, 5, False, "paste")
    with pytest.raises(ValueError, match="Upload an image"):
        handlers.complete(None, (0.25, 0.25, 0.75, 0.75), "a cat", "none", 1, 5, False)
    shown, text = handlers.caption(str(path), "english")
    assert isinstance(text, str) and shown.size == image.size
    with pytest.raises(ValueError, match="English or Chinese"):
        handlers.caption(str(path), "french")
