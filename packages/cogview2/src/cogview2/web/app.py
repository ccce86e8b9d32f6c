"""The Gradio page: three tabs (text to image, completion, captioning) over `PageHandlers`.

Gradio is imported only inside `build_app` (``pip install cogview2[web]``). Requests share one
queue with one worker (``concurrency_id="pipeline"``), so two people clicking at once are served
in order and each sees their queue position; "Cancel" withdraws a waiting or running request
(a running one stops being waited for; the model finishes its current call in the background).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from ..config import COMPLETION_FILLS
from ..recipes import RECIPES
from .config import WebConfig
from .handlers import PageHandlers, PipelineSource
from .inputs import BOX_UNITS, box_from_mask, box_from_values, painted_mask

_log = logging.getLogger("cogview2.web")

INSTALL_HINT = "the web page needs Gradio: pip install 'cogview2[web]'"
_CONCURRENCY_ID = "pipeline"
DEFAULT_BOX = {"Top": 0.25, "Left": 0.25, "Bottom": 0.75, "Right": 0.75}
"""Box edges shown when the completion tab opens (fractions)."""
_SYSTEM_FONTS = (["ui-sans-serif", "system-ui", "sans-serif"], ["ui-monospace", "monospace"])
"""Local font stacks, so an offline page never waits for web fonts."""


def require_gradio() -> Any:
    """Import Gradio, or raise ImportError saying how to install it."""
    try:
        import gradio
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return gradio


def page_theme() -> Any:
    """The page's Gradio theme (default look, system fonts)."""
    gr = require_gradio()
    sans, mono = _SYSTEM_FONTS
    return gr.themes.Default(font=sans, font_mono=mono)


def _shown(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ValueError into a Gradio error message and anything else into a short one."""
    gr = require_gradio()

    @functools.wraps(fn)  # keeps the signature: Gradio injects `progress` by inspecting it
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ValueError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception as err:
            _log.exception("request failed")
            raise gr.Error(
                f"Something went wrong ({type(err).__name__}: {err}); see the server log."
            ) from None

    return wrapped


def editor_box(editor: dict[str, Any] | None) -> tuple[float, float, float, float] | None:
    """Box of what was painted on the completion editor (fractions), or None if nothing was."""
    if not editor or not editor.get("layers"):
        return None
    layers = [layer for layer in editor["layers"] if layer is not None]
    if not layers:
        return None
    return box_from_mask(painted_mask(layers, layers[0].shape[:2]))


def _seed_box(gr: Any, cfg: WebConfig, **kwargs: Any) -> Any:
    """The seed field of a tab (the handlers write the seed used back into it)."""
    return gr.Number(
        value=0,
        precision=0,
        minimum=0,
        maximum=cfg.max_seed,
        label="Seed (the one used is shown here)",
        **kwargs,
    )


def _generate_tab(gr: Any, handlers: PageHandlers, queue: dict[str, Any], tracker: Any) -> None:
    """The "Text to image" tab: prompt, style, count, seed, guidance → gallery."""
    cfg = handlers.config

    def generate(prompt, style, num_images, seed, randomize, guidance, progress=tracker):
        progress(0.0, desc="coarse → direct SR → iterative SR")
        return handlers.generate(prompt, style, num_images, seed, randomize, guidance)

    with gr.Tab("Text to image", id="generate"):
        prompt = gr.Textbox(label="Prompt (English or 中文)", lines=2, elem_id="prompt")
        with gr.Row():
            default_style = cfg.default_style or handlers.pipe.config.default_style
            style = gr.Dropdown(sorted(RECIPES), value=default_style, label="Style")
            count = gr.Slider(
                1,
                cfg.max_images,
                value=cfg.default_num_images,
                step=1,
                label="Number of images",
                elem_id="num-images",
            )
            seed = _seed_box(gr, cfg, elem_id="seed")
            rnd = gr.Checkbox(value=True, label="Random seed", elem_id="random-seed")
            guidance = gr.Slider(
                0,
                10,
                value=handlers.pipe.config.guidance_scale,
                step=0.5,
                label="Guidance (1 = off)",
                elem_id="guidance",
            )
        with gr.Row():
            run = gr.Button("Generate", variant="primary", elem_id="generate-button")
            stop = gr.Button("Cancel", variant="stop", elem_id="cancel-button")
        gallery = gr.Gallery(
            label="Images", format="png", columns=4, interactive=False, elem_id="gallery"
        )
        inputs, outputs = [prompt, style, count, seed, rnd, guidance], [gallery, seed]
        clicked = run.click(_shown(generate), inputs, outputs, **queue)
        submitted = prompt.submit(_shown(generate), inputs, outputs, **queue)
        stop.click(None, None, None, cancels=[clicked, submitted])


def _complete_tab(gr: Any, handlers: PageHandlers, queue: dict[str, Any], tracker: Any) -> None:
    """The "Complete" tab: upload, paint or type a box, prompt → completions."""
    cfg = handlers.config

    def prepare(path):
        image = handlers.prepare_image(path)
        return image, {"background": image, "layers": [], "composite": image}

    def complete(image, editor, top, left, bottom, right, unit, prompt, style, fill, n, seed,
                 rnd, progress=tracker):  # fmt: skip
        if image is None:
            raise ValueError("Upload an image first.")
        side = image.size[0]
        box = editor_box(editor) or box_from_values(
            (top, left, bottom, right), unit=unit, side=side
        )
        progress(0.0, desc=f"completion ({fill})")
        return handlers.complete(image, box, prompt, style, n, seed, rnd, fill)

    with gr.Tab("Complete", id="complete"):
        gr.Markdown(
            "Upload an image (it is centre-cropped to a square), then paint over the region "
            "to regenerate, or type the box below. The text describes the whole image."
        )
        image_state = gr.State(None)
        with gr.Row():
            upload = gr.File(
                label="Image", file_types=["image"], type="filepath", elem_id="complete-upload"
            )
            editor = gr.ImageEditor(
                type="numpy",
                sources=[],
                transforms=[],
                layers=False,
                label="Paint the region to regenerate",
                elem_id="complete-editor",
            )
        with gr.Row():
            edges = [gr.Number(value=value, label=name) for name, value in DEFAULT_BOX.items()]
            unit = gr.Radio(list(BOX_UNITS), value="fraction", label="Box unit")
        c_prompt = gr.Textbox(label="Text", lines=2, elem_id="complete-prompt")
        with gr.Row():
            c_style = gr.Dropdown(
                sorted(RECIPES), value=handlers.pipe.config.completion_style, label="Style"
            )
            c_fill = gr.Radio(
                list(COMPLETION_FILLS),
                value=handlers.pipe.config.completion_fill,
                label="Fill (infill: continue the picture; compose: draw the text, fit it in)",
            )
            c_count = gr.Slider(
                1, cfg.max_images, value=cfg.default_num_images, step=1, label="Number of images"
            )
            c_seed = _seed_box(gr, cfg)
            c_rnd = gr.Checkbox(value=True, label="Random seed")
        with gr.Row():
            c_run = gr.Button("Complete", variant="primary", elem_id="complete-button")
            c_stop = gr.Button("Cancel", variant="stop")
        c_gallery = gr.Gallery(
            label="Completions", format="png", columns=4, interactive=False,
            elem_id="complete-gallery",
        )  # fmt: skip
        upload.upload(_shown(prepare), [upload], [image_state, editor])
        c_inputs = [
            image_state,
            editor,
            *edges,
            unit,
            c_prompt,
            c_style,
            c_fill,
            c_count,
            c_seed,
            c_rnd,
        ]
        c_event = c_run.click(_shown(complete), c_inputs, [c_gallery, c_seed], **queue)
        c_stop.click(None, None, None, cancels=[c_event])


def _caption_tab(gr: Any, handlers: PageHandlers, queue: dict[str, Any]) -> None:
    """The "Caption" tab: upload, language → caption."""

    def caption(path, language):
        return handlers.caption(path, language)

    with gr.Tab("Caption", id="caption"):
        with gr.Row():
            k_upload = gr.File(
                label="Image", file_types=["image"], type="filepath", elem_id="caption-upload"
            )
            k_preview = gr.Image(label="Captioned image", interactive=False, format="png")
        language = gr.Radio(["english", "chinese"], value="english", label="Language")
        k_run = gr.Button("Caption", variant="primary", elem_id="caption-button")
        k_text = gr.Textbox(label="Caption", interactive=False, elem_id="caption-text")
        k_run.click(_shown(caption), [k_upload, language], [k_preview, k_text], **queue)


def build_app(source: PipelineSource, config: WebConfig | None = None) -> Any:
    """Build the page (not started; call ``.launch`` or use `cogview2.web.serve`): one tab per
    task (`_generate_tab`, `_complete_tab`, `_caption_tab`) over one `PageHandlers`.

    Args:
        source: A `CogView2Pipeline`, or a zero-argument function returning one (loaded on the
            first request).
        config: Page limits and defaults.

    Returns:
        A queued ``gradio.Blocks``.

    Raises:
        ImportError: Gradio is not installed (the message gives the pip command).
    """
    gr = require_gradio()
    handlers = PageHandlers(source, config)
    cfg = handlers.config
    tracker = gr.Progress(track_tqdm=True)  # follows the pipeline's tqdm bar, stage by stage
    queue = dict(concurrency_limit=cfg.concurrency_limit, concurrency_id=_CONCURRENCY_ID)
    with gr.Blocks(title=cfg.title, analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {cfg.title}\nHierarchical text-to-image: a 20×20 token sketch, direct "
            "super-resolution to 60×60, then iterative refinement. Prompts in English or Chinese."
        )
        _generate_tab(gr, handlers, queue, tracker)
        _complete_tab(gr, handlers, queue, tracker)
        _caption_tab(gr, handlers, queue)
    demo.queue(max_size=cfg.queue_size, default_concurrency_limit=cfg.concurrency_limit)
    return demo
