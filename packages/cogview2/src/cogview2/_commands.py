"""CLI commands of the pipeline: ``generate``, ``complete``, ``caption``, ``convert``, ``info``.

`add_pipeline_commands(subparsers)` registers them on the ``cogview2`` parser (see cli.py).
Each command turns its arguments into library calls; expected failures raise ValueError or
FileNotFoundError, which the entry point prints as one line.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path

from .loading import DTYPE_NAMES, WEIGHTS_ENV, load_pipeline, parse_dtype, resolve_weights
from .weights import DEMO_WEIGHTS

DEFAULT_WEIGHTS_ENV = WEIGHTS_ENV  # the names this module had; `cogview2.loading` owns them
DEFAULT_WEIGHTS = DEMO_WEIGHTS


def _load(args: argparse.Namespace):
    """The pipeline named by --weights / $COGVIEW2_WEIGHTS / the demo weights, or --tiny."""
    plan, budget = _memory(args)
    return load_pipeline(
        args.weights,
        tiny=getattr(args, "tiny", False),
        device=args.device,
        dtype=args.dtype,
        memory_plan=plan,
        max_memory=budget,
        num_images=getattr(args, "num_images", 1),
    )


def _memory(args: argparse.Namespace):
    """``(plan, budget)``: an explicit `MemoryPlan` (--offload / --int8) or a budget string
    (--max-memory); at most one of them is set."""
    from .memory import MemoryPlan, parse_size

    if args.max_memory is not None:
        if args.offload is not None or args.int8:
            raise ValueError("give either --max-memory (the plan is chosen) or --offload/--int8")
        parse_size(args.max_memory)  # fail before any file is read
        return None, args.max_memory
    if args.offload is None and not args.int8:
        return None, None
    placement = {"model": "model_offload", "disk": "disk_offload", None: "resident"}
    return MemoryPlan(placement[args.offload], parse_dtype(args.dtype), args.int8), None


def _save_png(image, path: Path) -> None:
    from coglm_core import atomic_path

    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of the most square grid for ``n`` images with no empty row
    (4 → 2×2, 3 → 2×2 with one empty cell, 5 → 2×3, 9 → 3×3)."""
    cols = math.ceil(math.sqrt(n))
    return -(-n // cols), cols


def _grid(images):
    from PIL import Image

    w, h = images[0].size
    rows, cols = grid_shape(len(images))
    grid = Image.new("RGB", (cols * w, rows * h), "white")
    for i, im in enumerate(images):
        grid.paste(im, ((i % cols) * w, (i // cols) * h))
    return grid


def _slug(text: str) -> str:
    slug = re.sub(r"[^\w]+", "-", text, flags=re.UNICODE).strip("-")
    return slug[:40] or "prompt"


def _generator(seed: int | None, device: str):
    import torch

    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def _run_generate(args: argparse.Namespace) -> int:
    from .batch_generation import launched_by_torchrun, read_prompts

    prompts = list(args.prompt or [])
    if args.prompts_file is not None:
        prompts += read_prompts(args.prompts_file)
    if not prompts:
        raise ValueError("give a prompt, or --prompts-file FILE with one prompt per line")
    _output_folder(args.output)
    if args.prompts_file is not None or launched_by_torchrun():
        return _run_batch(args, prompts)
    pipe = _load(args)
    stages = None if args.stages is None else tuple(args.stages.split(","))
    for index, prompt in enumerate(prompts):
        out = pipe(
            prompt,
            num_images=args.num_images,
            style=args.style,
            generator=_generator(None if args.seed is None else args.seed + index, args.device),
            stages=stages,
            progress=not args.quiet,
            post_select=args.post_select,
            candidates=args.candidates,
            guidance_scale=args.guidance,
        )
        stem = f"{index:03d}-{_slug(prompt)}"
        for i, image in enumerate(out.images):
            _save_png(image, args.output / f"{stem}-{i}.png")
        if not args.no_grid:
            _save_png(_grid(out.images), args.output / f"{stem}-grid.png")
        print(f"{prompt!r}: {len(out.images)} images → {args.output}/{stem}-*.png")
    return 0


def batch_settings(args: argparse.Namespace):
    """The `BatchSettings` of a ``generate``-like command's arguments."""
    from .batch_generation import BatchSettings, weights_identity

    return BatchSettings(
        num_images=args.num_images,
        seed=args.seed,
        style=args.style,
        stages=None if args.stages is None else tuple(args.stages.split(",")),
        candidates=args.candidates,
        post_select=args.post_select,
        guidance=args.guidance,
        weights=weights_identity(None if args.tiny else resolve_weights(args.weights)),
        dtype=None if args.dtype is None else str(parse_dtype(args.dtype)).removeprefix("torch."),
        int8=bool(args.int8),
        device_type=args.device.split(":")[0],
    )


def _run_batch(args: argparse.Namespace, prompts: list[str]) -> int:
    """``generate --prompts-file``: the data-parallel, resumable runner (`batch_generation`)."""
    from .batch_generation import distributed_session, run_batch, share_threads

    settings = batch_settings(args)
    with distributed_session() as session:
        share_threads(getattr(args, "threads", None), session.local_world_size)
        device = session.device(args.device)
        args.device = device
        run_batch(
            lambda: _load(args),
            prompts,
            args.output,
            settings,
            session,
            device=device,
            grid=not args.no_grid,
            log=None if args.quiet else print,
        )
    return 0


def _open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    if Path(path).is_dir():
        raise ValueError(f"--image {path} is a directory; give an image file (PNG, JPEG, ...)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--image {path} not found")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"--image {path} is not an image Pillow can read ({err})") from err


def _output_folder(path: Path) -> Path:
    """Check ``-o`` before any work: an existing path must be a folder."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"-o/--output {path} is a file; give a folder for the images")
    return path


def _run_complete(args: argparse.Namespace) -> int:
    _output_folder(args.output)
    image = _open_image(args.image)
    pipe = _load(args)
    if image.size != (pipe.image_size, pipe.image_size):
        raise ValueError(
            f"{args.image} is {image.size[0]}×{image.size[1]} px; completion needs "
            f"{pipe.image_size}×{pipe.image_size} (crop/resize it first)"
        )
    out = pipe.complete(
        image,
        tuple(args.box),
        args.prompt,
        num_images=args.num_images,
        style=args.style,
        generator=_generator(args.seed, args.device),
        progress=not args.quiet,
        fill=args.fill,
    )
    stem = f"complete-{_slug(args.prompt)}"
    for i, im in enumerate(out.images):
        _save_png(im, args.output / f"{stem}-{i}.png")
    print(f"{len(out.images)} completions → {args.output}/{stem}-*.png")
    return 0


def _run_caption(args: argparse.Namespace) -> int:
    image = _open_image(args.image)
    pipe = _load(args)
    side = pipe.image_size if image.size[0] > pipe.low_image_size else pipe.low_image_size
    if image.size != (side, side):
        raise ValueError(
            f"{args.image} is {image.size[0]}×{image.size[1]} px; captioning needs a square of "
            f"{pipe.low_image_size} or {pipe.image_size} px"
        )
    for text in pipe.caption(
        image,
        language=args.language,
        num_captions=args.num_captions,
        generator=_generator(args.seed, args.device),
        max_length=args.max_length,
        temperature=args.temperature,
    ):
        print(text)
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from .convert import convert_official

    report = convert_official(
        args.coglm,
        args.dsr,
        args.itersr,
        args.icetk,
        args.labels,
        args.out,
        dtype=parse_dtype(args.dtype),
    )
    print(
        f"wrote {report.output} (DSR base shared with CogLM: {report.dsr_shares_base}; "
        f"ITERSR base shared: {report.itersr_shares_base})"
    )
    for name, keys in report.ignored_keys.items():
        if keys:
            print(f"  {name}: ignored {len(keys)} unused tensors, e.g. {keys[0]}")
    return 0


def _run_plan(args: argparse.Namespace) -> int:
    """``info --plan``: the predicted peak of every stage under each plan, and the choice."""
    from . import folder_format as W
    from .config import PipelineConfig
    from .memory import candidate_plans, choose_plan, estimate_memory, format_size

    if args.preset is not None:
        from .models.presets import build_models

        models, config = build_models(args.preset), PipelineConfig()
        source = f"preset {args.preset}"
    else:
        folder = resolve_weights(args.weights)
        manifest = W.read_manifest(folder)
        models, _, _ = W.model_structure(folder, manifest)
        config = PipelineConfig.from_dict(manifest.get("config", {}))
        source = str(folder)
    dtype, n = parse_dtype(args.dtype), args.num_images
    print(f"{source}: predicted device peak per stage, {n} image(s) per call, on {args.device}")
    for plan in candidate_plans(args.device, dtype):
        est = estimate_memory(models, plan, num_images=n, config=config, device=args.device)
        print(f"\n{plan.describe()}: peak {format_size(est.peak_bytes)}\n{est.table()}")
    if args.max_memory is not None:
        plan, est = choose_plan(
            models, args.max_memory, device=args.device, dtype=dtype, num_images=n, config=config
        )
        print(
            f"\n--max-memory {args.max_memory}: {plan.describe()} ({format_size(est.peak_bytes)})"
        )
    return 0


def _run_info(args: argparse.Namespace) -> int:
    if args.plan:
        return _run_plan(args)
    pipe = _load(args)
    cfg = pipe.coglm.config
    print(
        f"stage 1 CogLM: {cfg.num_layers} layers, hidden {cfg.hidden_size}, {cfg.num_attention_heads} heads, "
        f"vocab {cfg.vocab_size}, {pipe.coglm.num_parameters():,} parameters, "
        f"{pipe.coglm.dtype}"
    )
    for name in ("dsr", "itersr"):
        model = getattr(pipe, name)
        if model is None:
            print(f"{name}: absent")
            continue
        mixins = sum(t.numel() for t in model.mixin_state_dict().values())
        shared = "shared with stage 1" if model.base is pipe.coglm else "own copy"
        print(f"{name}: {model.config} | mixins {mixins:,} parameters | base transformer {shared}")
    print(
        f"images: {pipe.low_grid}×{pipe.low_grid} tokens ({pipe.low_image_size} px) → "
        f"{pipe.high_grid}×{pipe.high_grid} tokens ({pipe.image_size} px); "
        f"{int(pipe.cluster_labels.max()) + 1} clusters; prompts up to {pipe.max_prompt_tokens} tokens"
    )
    return 0


def count(minimum: int) -> Callable[[str], int]:
    """argparse type: a whole number >= ``minimum``; argparse names the option in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def _common(p: argparse.ArgumentParser, *, what: str = "images") -> None:
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help=f"pipeline folder (default: ${DEFAULT_WEIGHTS_ENV}, else the demo weights shipped "
        "with the package)",
    )
    p.add_argument(
        "--tiny",
        action="store_true",
        help="a tiny pipeline with random weights instead (smoke tests only: it draws noise)",
    )
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    p.add_argument(
        "--dtype",
        default=None,
        choices=sorted(DTYPE_NAMES),
        help="weight dtype (default: as stored)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help=f"random seed: the same seed and arguments give the same {what}; change it for "
        f"other {what}",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="device memory budget, e.g. 16GB or 14GiB: the fastest plan that fits is chosen "
        "(see `cogview2 info --plan`)",
    )
    p.add_argument(
        "--offload",
        choices=["model", "disk"],
        default=None,
        help="keep the models in CPU memory (model) or in the weights folder (disk) and load "
        "each stage's models only while it runs",
    )
    p.add_argument("--int8", action="store_true", help="weight-only int8 linear layers")


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless its help already says it, or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or any(action.default is x for x in (None, False, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


def _parser(subparsers: argparse._SubParsersAction, name: str, **kwargs) -> argparse.ArgumentParser:
    """A sub-command whose --help shows every default."""
    return subparsers.add_parser(name, formatter_class=HelpWithDefaults, **kwargs)


def add_pipeline_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``generate``, ``complete``, ``caption``, ``convert`` and ``info``."""
    for add in (_add_generate, _add_complete, _add_caption, _add_convert, _add_info):
        add(subparsers)


def _add_generate(subparsers: argparse._SubParsersAction) -> None:
    from .recipes import RECIPES
    from .stage_table import STAGES

    gen = _parser(
        subparsers,
        "generate",
        help="text → images",
        description="Generate images for each prompt (stage 1 at 20×20 tokens, direct and "
        "iterative super-resolution to 480 px): one PNG per image plus a grid.",
    )
    gen.add_argument("prompt", nargs="*", help="what to draw, e.g. 'red apple' or '熊猫'")
    gen.add_argument(
        "--prompts-file",
        type=Path,
        default=None,
        help="one prompt per line: resumable, data-parallel under torchrun; writes run.json and "
        "manifest.jsonl beside the PNGs (docs/scaling.md)",
    )
    gen.add_argument("-n", "--num-images", type=count(1), default=4, help="images per prompt")
    gen.add_argument(
        "-o", "--output", type=Path, default=Path("out"), help="folder for the PNG files"
    )
    gen.add_argument(
        "--style",
        default=None,
        choices=sorted(RECIPES),
        help="sampling recipe and prompt template (default: the weights' own, e.g. 'plain' for "
        "the emoji demo models, 'mainbody' for the official ones)",
    )
    gen.add_argument(
        "--stages",
        default=None,
        help=f"{' | '.join(','.join(STAGES[:i]) for i in range(1, 4))} (default: the weights' "
        "own: all three, coarse,dsr for the emoji demo weights)",
    )
    gen.add_argument(
        "--post-select", action="store_true", help="order images by caption likelihood"
    )
    gen.add_argument(
        "--candidates",
        type=count(1),
        default=None,
        help="draw N stage-1 images and super-resolve only the -n best by caption likelihood",
    )
    gen.add_argument(
        "--guidance",
        type=float,
        default=None,
        metavar="SCALE",
        help="classifier-free guidance of stage 1 (1 = off; default: the weights' own, "
        "1 for the official ones)",
    )
    gen.add_argument("--no-grid", action="store_true", help="do not write the grid PNG")
    _common(gen)
    gen.set_defaults(func=_run_generate)


def _add_complete(subparsers: argparse._SubParsersAction) -> None:
    from .config import COMPLETION_FILLS
    from .recipes import RECIPES

    comp = _parser(
        subparsers,
        "complete",
        help="regenerate a box of an image from a prompt",
        description="Redraw the inside of a box of a 480 px image so that the whole picture "
        "matches the prompt; the pixels outside the box stay the input's own.",
    )
    comp.add_argument("prompt", help="text describing the whole image after completion")
    comp.add_argument("--image", type=Path, required=True, help="the 480×480 px input image")
    comp.add_argument(
        "--box",
        type=float,
        nargs=4,
        required=True,
        metavar=("TOP", "LEFT", "BOTTOM", "RIGHT"),
        help="the region to redraw, as fractions of the image side, rows first "
        "(e.g. 0.3 0.3 0.7 0.7)",
    )
    comp.add_argument("-n", "--num-images", type=count(1), default=4, help="completions")
    comp.add_argument(
        "-o", "--output", type=Path, default=Path("out"), help="folder for the PNG files"
    )
    comp.add_argument(
        "--style",
        default=None,
        choices=sorted(RECIPES),
        help="sampling recipe (default: the weights' own)",
    )
    comp.add_argument(
        "--fill",
        default=None,
        choices=list(COMPLETION_FILLS),
        help="infill: the model continues the picture into the box under the prompt (the "
        "release); compose: it draws the prompt whole and fits it into the box, keying out "
        "its plain ground (default: the weights' own; the demo weights: compose)",
    )
    _common(comp)
    comp.set_defaults(func=_run_complete)


def _add_caption(subparsers: argparse._SubParsersAction) -> None:
    cap = _parser(
        subparsers,
        "caption",
        help="describe an image",
        description="Write a caption for an image (160 or 480 px square) in English or Chinese "
        "with the stage-1 model.",
    )
    cap.add_argument("--image", type=Path, required=True, help="the image file")
    cap.add_argument(
        "--language", default="english", choices=["english", "chinese"], help="caption language"
    )
    cap.add_argument("-n", "--num-captions", type=count(1), default=1, help="captions to write")
    cap.add_argument(
        "--max-length",
        type=count(1),
        default=None,
        help="caption tokens at most (default: the weights' caption_max_length)",
    )
    cap.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature (default: the weights' caption_temperature)",
    )
    _common(cap, what="captions")
    cap.set_defaults(func=_run_caption)


def _add_convert(subparsers: argparse._SubParsersAction) -> None:
    conv = _parser(
        subparsers,
        "convert",
        help="official SAT checkpoints + icetk files → pipeline folder",
        description="Convert the released CogView2 checkpoints (CogLM, DSR, ITERSR), the icetk "
        "files and the cluster labels into one pipeline weights folder; no pickled code runs.",
    )
    conv.add_argument("--coglm", type=Path, required=True, help="the coglm checkpoint folder")
    conv.add_argument("--dsr", type=Path, required=True, help="the cogview2-dsr folder")
    conv.add_argument("--itersr", type=Path, required=True, help="the cogview2-itersr folder")
    conv.add_argument(
        "--icetk", type=Path, required=True, help="folder with ice_text.model + ice_image.pt"
    )
    conv.add_argument("--labels", type=Path, required=True, help="cluster_label.npy")
    conv.add_argument("--out", type=Path, required=True, help="the pipeline folder to write")
    conv.add_argument(
        "--dtype",
        default=None,
        choices=sorted(DTYPE_NAMES),
        help="weight dtype (default: as stored)",
    )
    conv.set_defaults(func=_run_convert)


def _add_info(subparsers: argparse._SubParsersAction) -> None:
    info = _parser(
        subparsers,
        "info",
        help="describe a pipeline folder, or plan its memory",
        description="Print the models of a weights folder, or (--plan) the predicted peak "
        "memory of every stage under each memory plan.",
    )
    _common(info)
    info.add_argument(
        "--plan",
        action="store_true",
        help="print the predicted peak memory of every stage under each memory plan",
    )
    info.add_argument(
        "--preset",
        choices=["6b", "medium", "small"],
        default=None,
        help="with --plan: the official 6B architecture (or a smaller one) instead of --weights",
    )
    info.add_argument(
        "-n", "--num-images", type=count(1), default=1, help="images per call (--plan)"
    )
    info.set_defaults(func=_run_info)
