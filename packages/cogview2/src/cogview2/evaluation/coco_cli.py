"""``cogview2 eval-coco``: the paper's Table 1 (FID-0/1/2/4/8, IS on MS-COCO captions).

    torchrun --standalone --nproc-per-node 8 -m cogview2 eval-coco --weights DIR \\
        --captions annotations/captions_val2014.json --images val2014/ \\
        --inception weights-inception-2015-12-05-6726825d.pth -o coco-eval/

Generation runs through `cogview2.batch_generation` (data-parallel, resumable: rerun the same
command after a kill); rank 0 then measures. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

__all__ = ["add_eval_coco_command"]

RESULTS_JSON = "coco-eval.json"
RESULTS_MD = "coco-eval.md"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _radii(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated whole numbers >= 0, e.g. ``0,1,2,4,8``."""
    try:
        radii = tuple(int(x) for x in text.split(","))
    except ValueError:
        radii = (-1,)
    if not radii or min(radii) < 0:
        raise argparse.ArgumentTypeError(f"expected radii such as 0,1,2,4,8, got {text!r}")
    return radii


def _run(args: argparse.Namespace) -> int:
    from coglm_core import atomic_write_text

    from ..batch_generation import (
        BatchSettings,
        distributed_session,
        image_file,
        run_batch,
        share_threads,
        weights_identity,
    )
    from ..loading import load_pipeline, resolve_weights
    from .coco import coco_table, load_inception, measure, select_captions

    _check(args)
    if args.output.exists() and not args.output.is_dir():
        raise ValueError(f"-o/--output {args.output} is a file; give a folder")
    if not args.inception.is_file():
        raise FileNotFoundError(f"--inception {args.inception} not found (nothing is downloaded)")
    captions = select_captions(args.captions, args.images, args.num_captions, seed=args.seed)
    prompts = [c.caption for c in captions]
    spc = args.samples_per_caption
    settings = BatchSettings(
        num_images=1,
        seed=args.seed,
        style=args.style,
        stages=None if args.stages is None else tuple(args.stages.split(",")),
        candidates=spc if spc > 1 else None,
        guidance=args.guidance,
        weights=weights_identity(None if args.tiny else resolve_weights(args.weights)),
        dtype=args.dtype,
        device_type=args.device.split(":")[0],
    )
    samples = args.output / "samples"
    with distributed_session() as session:
        share_threads(getattr(args, "threads", None), session.local_world_size)
        device = session.device(args.device)
        inception = load_inception(args.inception, device) if session.rank == 0 else None
        if session.rank == 0:
            lines = [json.dumps(c.__dict__, ensure_ascii=False) for c in captions]
            args.output.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.output / "captions.jsonl", "".join(x + "\n" for x in lines))
        run_batch(
            lambda: load_pipeline(args.weights, tiny=args.tiny, device=device, dtype=args.dtype),
            prompts,
            samples,
            settings,
            session,
            device=device,
            grid=False,
            log=None if args.quiet else print,
        )
    if inception is None:  # rank > 0: generation done, rank 0 measures
        return 0
    generated = [samples / image_file(p, i, 0, len(prompts)) for i, p in enumerate(prompts)]
    real = [args.images / c.file_name for c in captions]
    results = measure(
        inception,
        real,
        generated,
        size=args.size,
        radii=args.blur_radii,
        batch_size=args.batch_size,
        samples_per_caption=spc,
        progress=not args.quiet,
    )
    name = "tiny (random)" if args.tiny else str(args.weights or "demo")
    table = coco_table(results, name)
    record = {
        **results.to_json(),
        "weights": settings.weights,
        "captions": str(args.captions),
        "seed": args.seed,
        "inception": {"path": str(args.inception), "sha256": _sha256(args.inception)},
        "blur": "PIL ImageFilter.GaussianBlur(radius) on both sides after the resize",
        "resize": "centre crop to a square, bicubic resize (PIL)",
    }
    atomic_write_text(args.output / RESULTS_JSON, json.dumps(record, indent=2) + "\n")
    note = (
        f"{results.num_captions} MS-COCO captions, best of {spc} by caption score, "
        f"{args.size} px; IS ± {results.inception_score_std:.2f} over "
        f"{min(10, results.num_captions)} splits.\n"
    )
    atomic_write_text(args.output / RESULTS_MD, table + "\n" + note)
    print(table + note, end="")
    return 0


def add_eval_coco_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``eval-coco`` on the ``cogview2`` command line."""
    from ..loading import DTYPE_NAMES
    from ..recipes import RECIPES

    p = subparsers.add_parser(
        "eval-coco",
        help="the paper's Table 1: FID-0/1/2/4/8 and IS on MS-COCO captions",
        description="Draw one image per MS-COCO validation caption (the best of "
        "--samples-per-caption by caption score; data-parallel under torchrun, resumable) and "
        "measure FID with blur radii 0-8 and IS against the validation images at --size px. "
        "You supply the captions file, the images and the Inception weights; nothing is "
        "downloaded (docs/scaling.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--captions", type=Path, required=True, help="captions_val2014.json")
    p.add_argument("--images", type=Path, required=True, help="folder of the val2014 images")
    p.add_argument(
        "--inception",
        type=Path,
        required=True,
        help="InceptionV3 FID weights: torch-fidelity's weights-inception-2015-12-05-6726825d.pth",
    )
    p.add_argument("-o", "--output", type=Path, default=Path("coco-eval"), help="output folder")
    p.add_argument("-n", "--num-captions", type=int, default=30000, help="captions (one per image)")
    p.add_argument(
        "--samples-per-caption",
        type=int,
        default=16,
        help="samples; the best by caption score is kept",
    )
    p.add_argument("--size", type=int, default=256, help="pixel side of both image sets")
    p.add_argument("--blur-radii", type=_radii, default=(0, 1, 2, 4, 8), help="FID-k radii")
    p.add_argument("--batch-size", type=int, default=32, help="images per Inception forward")
    p.add_argument("--weights", type=Path, default=None, help="pipeline folder (default: demo)")
    p.add_argument("--tiny", action="store_true", help="the tiny random pipeline (tests only)")
    p.add_argument("--device", default="cpu", help="torch device (cuda: one GPU per rank)")
    p.add_argument(
        "--dtype",
        default=None,
        choices=sorted(DTYPE_NAMES),
        help="weight dtype (default: as stored)",
    )
    p.add_argument("--style", default=None, choices=sorted(RECIPES), help="sampling recipe")
    p.add_argument("--stages", default=None, help="stages (default: the weights' own)")
    p.add_argument("--guidance", type=float, default=None, help="stage-1 guidance scale")
    p.add_argument("--seed", type=int, default=0, help="caption sample and generation seed")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_run)


def _check(args: argparse.Namespace) -> None:
    """Option ranges (one-line errors naming the option)."""
    for option, value, minimum in (
        ("--samples-per-caption", args.samples_per_caption, 1),
        ("--size", args.size, 8),
        ("--batch-size", args.batch_size, 1),
    ):
        if value < minimum:
            raise ValueError(f"{option} must be >= {minimum}, got {value}")
