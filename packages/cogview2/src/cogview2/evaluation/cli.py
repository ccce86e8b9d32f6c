"""``cogview2 eval --weights DIR --data DIR --out docs/``: the argparse layer of the evaluation."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..data.captions import CAPTION_TEMPLATES
from ..stage_table import STAGES
from .classifier import ClassifierConfig
from .run import EvalConfig

__all__ = ["add_eval_command"]


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..pipeline import CogView2Pipeline
    from .run import run_evaluation

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = CogView2Pipeline.from_pretrained(args.weights, device=device, dtype=torch.float32)
    cfg = EvalConfig(
        num_prompts=args.num_prompts,
        num_seen_prompts=args.num_seen_prompts,
        seen_groups=tuple(args.seen_groups),
        seen_styles=tuple(args.seen_styles),
        grid_samples=args.grid_samples,
        num_distractors=args.distractors,
        stages=None if args.stages is None else tuple(args.stages),
        seed=args.seed,
        guidance_scale=args.guidance,
        caption_template=args.template,
        fidelity_concepts=args.fidelity_concepts,
        classifier=dataclasses.replace(
            ClassifierConfig(), steps=args.classifier_steps, max_images=args.classifier_images
        ),
    )
    results = run_evaluation(
        pipe, args.data, args.out, cfg, weights_name=str(args.weights), progress=not args.quiet
    )
    c, q = results.classifier, results.retrieval
    print(
        f"PSNR {results.psnr_low:.2f}/{results.psnr_high:.2f} dB; group acc "
        f"{c.gen_group_acc:.3f} (real {c.real_group_acc:.3f}, chance "
        f"{c.chance_group_uniform:.3f}); FD {results.frechet.generated_vs_real:.3f}; "
        f"retrieval {q.generated_acc:.3f} (chance {q.chance:.3f}) -> {args.out}"
    )
    if results.fidelity is not None:
        m = results.fidelity.mean()
        print(
            "per stage, PSNR against the real renders: bicubic {bicubic:.2f}, DSR {dsr:.2f}, "
            "DSR + LoPAR {lopar:.2f}, VQ-VAE ceiling {vqvae:.2f} dB".format(**m["psnr"])
        )
    if results.seen is not None:
        s = results.seen
        print(f"training concepts: group acc {s.gen_group_acc:.3f} (real {s.real_group_acc:.3f})")
    return 0


def _count(text: str) -> int:
    """argparse type: a whole number >= 0 (the error names the option)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def add_eval_command(subparsers: argparse._SubParsersAction) -> None:
    """Register ``eval`` on the ``cogview2`` command line."""
    d = EvalConfig()
    p = subparsers.add_parser(
        "eval",
        help="evaluate a weights folder on the held-out emoji prompts",
        description="VQ-VAE PSNR, group-classifier accuracy, Fréchet distance in the classifier's "
        "features, inverse-prompt retrieval and per-stage fidelity to the real renders; writes eval-results.md/.json and "
        "eval-samples.png into --out.",
    )
    p.add_argument("--weights", type=Path, required=True, help="pipeline weights folder")
    p.add_argument("--data", type=Path, required=True, help="emoji data set folder")
    p.add_argument("--out", type=Path, required=True, help="report folder (e.g. docs/)")
    p.add_argument("--num-prompts", type=int, default=d.num_prompts)
    p.add_argument(
        "--num-seen-prompts",
        type=int,
        default=d.num_seen_prompts,
        help="training-concept prompts also generated and classified (0: none)",
    )
    p.add_argument(
        "--seen-groups",
        nargs="+",
        default=[],
        metavar="GROUP",
        help="take the training-concept prompts from these emoji groups (e.g. food-drink)",
    )
    p.add_argument(
        "--seen-styles",
        nargs="+",
        default=[],
        metavar="STYLE",
        help="take the training-concept prompts from these art styles (e.g. twemoji)",
    )
    p.add_argument(
        "--fidelity-concepts",
        type=_count,
        default=d.fidelity_concepts,
        metavar="N",
        help="training concepts whose every stage is compared with the real render (PSNR, "
        "SSIM, teacher-forced token accuracy; needs scikit-image: cogview2[eval]); 0: none",
    )
    p.add_argument("--grid-samples", type=int, default=d.grid_samples, help="images per grid")
    p.add_argument("--distractors", type=int, default=d.num_distractors)
    p.add_argument(
        "--stages",
        nargs="+",
        default=None,
        choices=list(STAGES),
        help="stages run for the samples (default: the weights' own)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--template",
        default=d.caption_template,
        choices=sorted(CAPTION_TEMPLATES),
        help="caption template of the prompts (name: 'red apple'; name_style: "
        "'red apple, twemoji style')",
    )
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        metavar="SCALE",
        help="stage-1 classifier-free guidance (default: the weights' own)",
    )
    p.add_argument("--classifier-steps", type=int, default=d.classifier.steps)
    p.add_argument(
        "--classifier-images",
        type=_count,
        default=d.classifier.max_images,
        metavar="N",
        help="training renders the classifier learns from (the others serve the "
        "training-concept prompts; a data set of few renders needs fewer)",
    )
    p.add_argument("--device", default=None, help="torch device (default: GPU if present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)
