"""`run_evaluation`: every metric of ``cogview2 eval`` on the held-out prompts, plus the report."""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from tqdm.auto import tqdm

from coglm_core import atomic_write_text

from ..data import EmojiDataset, make_caption
from ..data.dataset import select_records
from ..pipeline import CogView2Pipeline
from ..stages.inverse_prompt import caption_scores
from .classifier import (
    ClassifierConfig,
    evenly_spaced,
    load_images,
    predict,
    to_uint8,
    train_classifier,
)
from .fidelity import FidelityResults, stage_fidelity
from .grid import sample_grid, save_png
from .metrics import frechet_distance, psnr, retrieval_accuracy
from .report import RESULTS_JSON, RESULTS_MD, SAMPLES_PNG, SEEN_SAMPLES_PNG, render_markdown
from .results import (
    ClassifierResults,
    EvalResults,
    FrechetResults,
    RetrievalResults,
    SeenResults,
)

__all__ = ["EvalConfig", "fidelity_prompts", "run_evaluation"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """What ``cogview2 eval`` measures and how much.

    Attributes:
        num_prompts: Held-out prompts generated (evenly spaced over the held-out records).
        num_seen_prompts: Training-split prompts generated as well (concepts the generator was
            trained on, the regime of the README's "red apple"), taken from training renders the
            classifier did not train on; 0 skips them.
        seen_groups: Take the training-concept prompts from these Unicode emoji groups only
            (empty: every group), e.g. the groups a demo model was trained on.
        seen_styles: Take them from these art styles only (empty: every style).
        num_distractors: Wrong captions per retrieval question (chance = 1 / (1 + this)).
        stages: Pipeline stages run for the samples (None: the pipeline's
            ``config.default_stages``).
        style: Style recipe; None: the pipeline's ``config.default_style`` (the demo weights:
            ``"plain"``, the prompt as is, as trained).
        caption_template: Caption template of the prompts (e.g. "red apple, twemoji style").
        guidance_scale: Stage-1 classifier-free guidance; None: the pipeline's
            ``config.guidance_scale``.
        psnr_images: Held-out renders reconstructed for the PSNR.
        max_real: Held-out renders classified / used as the Fréchet reference (None: all).
        seed: Seeds generation (prompt ``i`` uses ``seed + i``).
        grid_samples: Samples shown in each grid (evenly spaced over the prompts).
        grid_columns: Columns of the sample grid.
        grid_tile: Tile side of the grid (px).
        fidelity_concepts: Training concepts (of ``seen_groups`` / ``seen_styles``, base emoji)
            whose every stage is compared with the real render (`stage_fidelity`); 0 skips it.
        classifier: The group classifier.
    """

    num_prompts: int = 64
    num_seen_prompts: int = 32
    seen_groups: tuple[str, ...] = ()
    seen_styles: tuple[str, ...] = ()
    num_distractors: int = 4
    stages: tuple[str, ...] | None = None
    style: str | None = None
    caption_template: str = "name_style"
    guidance_scale: float | None = None
    psnr_images: int = 64
    max_real: int | None = 1000
    seed: int = 0
    grid_samples: int = 16
    grid_columns: int = 4
    grid_tile: int = 160
    fidelity_concepts: int = 16
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def __post_init__(self) -> None:
        if self.num_prompts < 2 or self.num_distractors < 1 or self.psnr_images < 1:
            raise ValueError("need num_prompts >= 2, num_distractors >= 1 and psnr_images >= 1")
        if self.num_seen_prompts < 0 or self.grid_samples < 1:
            raise ValueError("need num_seen_prompts >= 0 and grid_samples >= 1")
        if isinstance(self.fidelity_concepts, bool) or self.fidelity_concepts < 0:
            raise ValueError(f"fidelity_concepts must be >= 0, got {self.fidelity_concepts!r}")


def _reconstruction_psnr(pipe: CogView2Pipeline, data: EmojiDataset, n: int) -> float:
    ids = evenly_spaced(len(data), n)
    x = torch.stack([data[i]["image"] for i in ids]).float() / 255.0
    side = data.size
    out = []
    for s in range(0, len(ids), 16):
        tokens = pipe.tokenizer.encode_image(x[s : s + 16], compression=pipe.config.compression)
        recon = pipe.tokenizer.decode_image(tokens, compression=pipe.config.compression)
        out.append(psnr(x[s : s + 16], recon.float()[..., :side, :side]))
    return float(torch.cat(out).mean())


def _fits(pipe: CogView2Pipeline, prompt: str, style: str | None) -> bool:
    try:
        pipe.encode_prompt(prompt, style)
    except ValueError:  # longer than the pipeline accepts
        return False
    return True


def _retrieval(
    pipe: CogView2Pipeline, low_tokens: torch.Tensor, prompts: list[str], k: int
) -> float:
    """Row i: the caption score of prompt i and of the next ``k`` different prompts."""
    n = len(prompts)
    boc = pipe.coglm.config.boc_id
    rows = []
    for i in range(n):
        candidates = [prompts[i]] + [prompts[(i + j) % n] for j in range(1, min(k, n - 1) + 1)]
        rows.append(
            torch.stack(
                [
                    caption_scores(
                        pipe.coglm,
                        low_tokens[i : i + 1],
                        pipe.tokenizer.encode_text(c),
                        separator_id=boc,
                    )[0]
                    for c in candidates
                ]
            )
        )
    return retrieval_accuracy(torch.stack(rows), torch.zeros(n, dtype=torch.long))


def _labels(records: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) group ids and (N,) subgroup ids of the records."""
    groups = torch.tensor([int(r["group_id"]) for r in records])
    return groups, torch.tensor([int(r["subgroup_id"]) for r in records])


def _accuracy(
    pred: dict[str, torch.Tensor], labels: tuple[torch.Tensor, torch.Tensor]
) -> tuple[float, float]:
    """(group accuracy, subgroup accuracy) of classifier predictions against ``_labels``."""
    groups, subgroups = labels
    return (
        float((pred["group"] == groups).double().mean()),
        float((pred["subgroup"] == subgroups).double().mean()),
    )


def _prompt_indices(
    pipe: CogView2Pipeline,
    records: list[dict[str, Any]],
    candidates: Sequence[int],
    n: int,
    cfg: EvalConfig,
) -> list[int]:
    """``n`` record indices, evenly spaced over the ``candidates`` whose caption fits."""
    fits = [
        i
        for i in candidates
        if _fits(pipe, make_caption(records[i], "en", cfg.caption_template), cfg.style)
    ]
    if len(fits) < 2:
        raise ValueError(
            f"fewer than 2 prompts fit the pipeline's {pipe.max_prompt_tokens} text tokens"
        )
    return [fits[j] for j in evenly_spaced(len(fits), n)]


def _generate(
    pipe: CogView2Pipeline, prompts: list[str], cfg: EvalConfig, progress: bool, desc: str
) -> tuple[list[Image.Image], torch.Tensor]:
    """One image per prompt (prompt ``i`` seeded ``cfg.seed + i``) and its (N, 400) low-res ids."""
    images: list[Image.Image] = []
    low = []
    for i, prompt in enumerate(tqdm(prompts, disable=not progress, desc=desc)):
        gen = torch.Generator(device=pipe.device).manual_seed(cfg.seed + i)
        result = pipe(
            prompt,
            style=cfg.style,
            generator=gen,
            stages=cfg.stages,
            progress=False,
            score=False,
            guidance_scale=cfg.guidance_scale,
        )
        images.extend(result.images)  # type: ignore[arg-type]
        low.append(result.low_res_tokens.reshape(1, -1))
    return images, torch.cat(low)


def fidelity_prompts(
    pipe: CogView2Pipeline, data_root: str | Path, cfg: EvalConfig
) -> tuple[list[str], list[int]]:
    """Prompts and training-split record indices of the ``cfg.fidelity_concepts`` concepts whose
    stages `stage_fidelity` measures: base emoji (no skin-tone variants) of
    ``cfg.seen_groups`` / ``cfg.seen_styles`` whose caption fits, evenly spaced."""
    train = EmojiDataset(data_root, "train", pipe.low_image_size)
    candidates = select_records(
        train.records,
        [i for i, r in enumerate(train.records) if r["code"] == r["concept"]],
        {"group": cfg.seen_groups, "style": cfg.seen_styles},
        error="seen_{key}s {unknown} are not in the data set: {present}",
    )
    ids = _prompt_indices(pipe, train.records, candidates, cfg.fidelity_concepts, cfg)
    return [make_caption(train.records[i], "en", cfg.caption_template) for i in ids], ids


def _fidelity(
    pipe: CogView2Pipeline, data_root: str | Path, cfg: EvalConfig, progress: bool
) -> FidelityResults:
    prompts, ids = fidelity_prompts(pipe, data_root, cfg)
    renders = []
    for side in (pipe.image_size, pipe.low_image_size):
        data = EmojiDataset(data_root, "train", side)
        renders.append(torch.stack([data[i]["image"] for i in ids]))
    return stage_fidelity(
        pipe,
        prompts,
        *renders,
        seed=cfg.seed,
        style=cfg.style,
        guidance_scale=cfg.guidance_scale,
        progress=progress,
    )


def _save_grid(images: list[Image.Image], prompts: list[str], cfg: EvalConfig, path: Path) -> None:
    shown = evenly_spaced(len(images), cfg.grid_samples)
    grid = sample_grid(
        [images[i] for i in shown],
        [prompts[i] for i in shown],
        columns=cfg.grid_columns,
        tile=cfg.grid_tile,
    )
    save_png(grid, path)


def _classifier_metrics(
    clf: Any,
    real: dict[str, torch.Tensor],
    real_labels: tuple[torch.Tensor, torch.Tensor],
    images: list[Image.Image],
    prompt_records: list[dict[str, Any]],
    counts: tuple[int, int, int],
    cfg: EvalConfig,
) -> tuple[ClassifierResults, FrechetResults]:
    """The classifier rows and the Fréchet distance of the generated held-out pictures.
    ``counts``: (number of groups, of subgroups, classifier training images)."""
    num_groups, num_subgroups, train_images = counts
    fake = predict(clf, to_uint8(images, cfg.classifier.image_size))
    real_acc, gen_acc = _accuracy(real, real_labels), _accuracy(fake, _labels(prompt_records))
    group_counts = torch.bincount(real_labels[0], minlength=num_groups).double()
    n_real = len(real_labels[0])
    classifier = ClassifierResults(
        num_groups=num_groups,
        num_subgroups=num_subgroups,
        train_images=train_images,
        real_images=n_real,
        generated_images=len(images),
        real_group_acc=real_acc[0],
        real_subgroup_acc=real_acc[1],
        gen_group_acc=gen_acc[0],
        gen_subgroup_acc=gen_acc[1],
        chance_group_uniform=1.0 / num_groups,
        chance_group_majority=float(group_counts.max() / group_counts.sum()),
        chance_subgroup_uniform=1.0 / num_subgroups,
    )
    halves = (
        frechet_distance(real["features"][0::2], real["features"][1::2]) if n_real >= 4 else None
    )
    frechet = FrechetResults(frechet_distance(fake["features"], real["features"]), halves)
    return classifier, frechet


def _retrieval_metrics(
    pipe: CogView2Pipeline,
    heldout: EmojiDataset,
    prompt_ids: list[int],
    prompts: list[str],
    low_tokens: torch.Tensor,
    cfg: EvalConfig,
) -> RetrievalResults:
    """Inverse-prompt retrieval of the generated pictures and of the real renders."""
    real_low = pipe.tokenizer.encode_image(
        torch.stack([heldout[i]["image"] for i in prompt_ids]).float() / 255.0,
        compression=pipe.config.compression,
    ).reshape(len(prompt_ids), -1)
    k = min(cfg.num_distractors, len(prompts) - 1)
    return RetrievalResults(
        candidates=k + 1,
        generated_acc=_retrieval(pipe, low_tokens, prompts, k),
        real_acc=_retrieval(pipe, real_low, prompts, k),
        chance=1.0 / (k + 1),
    )


def _seen_metrics(
    pipe: CogView2Pipeline,
    clf: Any,
    data_root: str | Path,
    unseen_by_clf: list[int],
    final_size: int,
    cfg: EvalConfig,
    progress: bool,
) -> tuple[SeenResults, list[Image.Image]]:
    """The classifier rows on training concepts (renders the classifier did not train on: the
    generator knows the concept, the classifier judges it as fresh), and their pictures."""
    train = EmojiDataset(data_root, "train", pipe.low_image_size)
    candidates = select_records(
        train.records,
        unseen_by_clf,
        {"group": cfg.seen_groups, "style": cfg.seen_styles},
        error="seen_{key}s {unknown} are not in the data set: {present}",
    )
    seen_ids = _prompt_indices(pipe, train.records, candidates, cfg.num_seen_prompts, cfg)
    seen_records = [train.records[i] for i in seen_ids]
    prompts = [make_caption(r, "en", cfg.caption_template) for r in seen_records]
    images, _ = _generate(pipe, prompts, cfg, progress, "generate (seen)")
    train_hi = EmojiDataset(data_root, "train", final_size)
    labels = _labels(seen_records)
    size = cfg.classifier.image_size
    gen_acc = _accuracy(predict(clf, to_uint8(images, size)), labels)
    real_acc = _accuracy(predict(clf, load_images(train_hi, size, seen_ids)), labels)
    seen = SeenResults(tuple(prompts), gen_acc[0], gen_acc[1], real_acc[0], real_acc[1])
    return seen, images


def run_evaluation(
    pipe: CogView2Pipeline,
    data_root: str | Path,
    out_dir: str | Path,
    cfg: EvalConfig | None = None,
    *,
    weights_name: str = "",
    progress: bool = True,
) -> EvalResults:
    """Evaluate ``pipe`` on the held-out split and write the report.

    Writes ``eval-results.md`` (the table), ``eval-results.json`` (`EvalResults.to_json`) and
    ``eval-samples.png`` (the samples, prompt under each) into ``out_dir``.

    Args:
        pipe: The pipeline (its stage-1 and output sizes must be render sizes of the data set).
        data_root: The emoji data set.
        out_dir: Report folder (e.g. ``docs/``).
        cfg: What to measure.
        weights_name: Shown in the report (e.g. the weights folder).
        progress: Progress bars.

    Returns:
        `EvalResults`.
    """
    cfg = cfg or EvalConfig()
    # Record the style and guidance actually used (None means the pipeline's default).
    cfg = replace(
        cfg,
        stages=tuple(cfg.stages or pipe.config.default_stages),
        style=cfg.style or pipe.config.default_style,
        guidance_scale=(
            pipe.config.guidance_scale if cfg.guidance_scale is None else cfg.guidance_scale
        ),
    )
    tick = time.perf_counter()
    low_size, high_size = pipe.low_image_size, pipe.image_size
    final_size = high_size if {"dsr", "itersr"} & set(cfg.stages) else low_size
    heldout = EmojiDataset(data_root, "heldout", low_size)
    heldout_hi = EmojiDataset(data_root, "heldout", final_size)
    train = EmojiDataset(data_root, "train", low_size)
    if len(heldout) < 2:
        raise ValueError(f"{data_root}: the held-out split has {len(heldout)} samples; need >= 2")

    c = cfg.classifier
    records = train.records + heldout.records
    num_groups = 1 + max(int(r["group_id"]) for r in records)
    num_subgroups = 1 + max(int(r["subgroup_id"]) for r in records)
    train_ids = evenly_spaced(len(train), c.max_images)
    clf = train_classifier(
        load_images(train, c.image_size, train_ids),
        torch.tensor([int(train.records[i]["group_id"]) for i in train_ids]),
        torch.tensor([int(train.records[i]["subgroup_id"]) for i in train_ids]),
        num_groups,
        num_subgroups,
        c,
        progress=progress,
    )
    real_ids = evenly_spaced(len(heldout_hi), cfg.max_real)
    real = predict(clf, load_images(heldout_hi, c.image_size, real_ids))
    real_labels = _labels([heldout_hi.records[i] for i in real_ids])

    prompt_ids = _prompt_indices(pipe, heldout.records, range(len(heldout)), cfg.num_prompts, cfg)
    prompt_records = [heldout.records[i] for i in prompt_ids]
    prompts = [make_caption(r, "en", cfg.caption_template) for r in prompt_records]
    images, low_tokens = _generate(pipe, prompts, cfg, progress, "generate (held-out)")
    counts = (num_groups, num_subgroups, len(train_ids))
    classifier, frechet = _classifier_metrics(
        clf, real, real_labels, images, prompt_records, counts, cfg
    )
    retrieval = _retrieval_metrics(pipe, heldout, prompt_ids, prompts, low_tokens, cfg)
    seen, seen_images = None, []
    unseen_by_clf = sorted(set(range(len(train))) - set(train_ids))
    if cfg.num_seen_prompts and len(unseen_by_clf) < 2:
        _log.warning(
            "eval: skipping the training-concept prompts: the classifier trained on %d of the %d "
            "training renders, fewer than 2 are left (lower classifier.max_images)",
            len(train_ids),
            len(train),
        )
    elif cfg.num_seen_prompts:
        seen, seen_images = _seen_metrics(
            pipe, clf, data_root, unseen_by_clf, final_size, cfg, progress
        )
    fidelity = None
    if cfg.fidelity_concepts and pipe.dsr is not None and pipe.itersr is not None:
        fidelity = _fidelity(pipe, data_root, cfg, progress)
    results = EvalResults(
        weights=weights_name,
        config=asdict(cfg),
        psnr_low=_reconstruction_psnr(pipe, heldout, cfg.psnr_images),
        psnr_high=_reconstruction_psnr(pipe, heldout_hi, cfg.psnr_images),
        prompts=tuple(prompts),
        classifier=classifier,
        frechet=frechet,
        retrieval=retrieval,
        seen=seen,
        fidelity=fidelity,
        seconds=round(time.perf_counter() - tick, 1),
        machine=f"{platform.machine()} {platform.processor() or ''}".strip(),
        torch_threads=torch.get_num_threads(),
    )
    _write_report(Path(out_dir), results, images, seen_images, cfg)
    return results


def _write_report(
    out: Path,
    results: EvalResults,
    images: list[Image.Image],
    seen_images: list[Image.Image],
    cfg: EvalConfig,
) -> None:
    """The grids, ``eval-results.json`` and ``eval-results.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    _save_grid(images, list(results.prompts), cfg, out / SAMPLES_PNG)
    if seen_images and results.seen is not None:
        _save_grid(seen_images, list(results.seen.prompts), cfg, out / SEEN_SAMPLES_PNG)
    document = results.to_json()
    atomic_write_text(out / RESULTS_JSON, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out / RESULTS_MD, render_markdown(document))
    _log.info("eval: wrote %s, %s, %s", out / RESULTS_MD, out / RESULTS_JSON, out / SAMPLES_PNG)
