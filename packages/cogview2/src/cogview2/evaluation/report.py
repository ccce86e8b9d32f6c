"""The markdown report of ``cogview2 eval``."""

from __future__ import annotations

from typing import Any

__all__ = ["RESULTS_JSON", "RESULTS_MD", "SAMPLES_PNG", "SEEN_SAMPLES_PNG", "render_markdown"]

RESULTS_MD = "eval-results.md"
RESULTS_JSON = "eval-results.json"
SAMPLES_PNG = "eval-samples.png"
SEEN_SAMPLES_PNG = "eval-samples-seen.png"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _seen_rows(seen: dict[str, Any] | None, cfg: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    if not seen:
        return []
    n = len(seen["prompts"])
    only = [
        f"{field} {', '.join(cfg[key])}"
        for field, key in (("groups", "seen_groups"), ("style", "seen_styles"))
        if cfg.get(key)
    ]
    where = f" of {'; '.join(only)}" if only else ""
    return [
        (
            f"(b) group accuracy, {n} training concepts{where} (seen by the generator, "
            "not the classifier)",
            _pct(seen["gen_group_acc"]),
            _pct(seen["real_group_acc"]),
            "",
        ),
        (
            "(b) subgroup accuracy, the same training concepts",
            _pct(seen["gen_subgroup_acc"]),
            _pct(seen["real_subgroup_acc"]),
            "",
        ),
    ]


_FIDELITY_LABELS = {
    "bicubic": "(a) stage 1, decoded and bicubic-upscaled",
    "dsr": "(b) stage 1 + direct super-resolution",
    "lopar": "(c) stage 1 + DSR + LoPAR",
    "vqvae": "(d) VQ-VAE reconstruction of the real render (the ceiling)",
}


def _fidelity_lines(fid: dict[str, Any] | None) -> list[str]:
    """The per-stage fidelity table (`stage_fidelity` results as JSON)."""
    if not fid:
        return []
    m = fid["mean"]
    n = m["concepts"]
    passes = ", ".join(f"{_pct(a)}" for a in m["lopar_token_accuracy"])
    return [
        "## Per-stage fidelity on training concepts",
        "",
        f"{n} training concepts (base emoji of the groups and styles above), each generated with "
        f"seed {fid['seed']} + its index and style `{fid['style']}`, stopped after each stage; "
        "every picture against the real render at the output size (mean over the concepts; "
        "per concept in `eval-results.json`).",
        "",
        "| picture | PSNR | SSIM |",
        "|---|---|---|",
        *(
            f"| {label} | {m['psnr'][row]:.2f} dB | {m['ssim'][row]:.3f} |"
            for row, label in _FIDELITY_LABELS.items()
        ),
        "",
        f"DSR + LoPAR below its bicubic picture: {m['lopar_below_bicubic']} of {n} concepts. "
        "Teacher-forced token accuracy (argmax against the real render's tokens): DSR from the "
        f"real 20×20 tokens {_pct(m['dsr_token_accuracy'])}; LoPAR passes 1–6, at the positions "
        f"each pass re-masks, from the real 60×60 tokens: {passes}.",
        "",
    ]


def render_markdown(r: dict[str, Any]) -> str:
    """The results table (every number comes from ``r``, the output of `run_evaluation`)."""
    c, f, q = r["classifier"], r["frechet"], r["retrieval"]
    cfg = r["config"]
    rows = [
        ("(a) VQ-VAE reconstruction PSNR, stage-1 size", f"{r['psnr_low']:.2f} dB", "", ""),
        ("(a) VQ-VAE reconstruction PSNR, output size", f"{r['psnr_high']:.2f} dB", "", ""),
        (
            "(b) group accuracy",
            _pct(c["gen_group_acc"]),
            _pct(c["real_group_acc"]),
            f"{_pct(c['chance_group_uniform'])} uniform, {_pct(c['chance_group_majority'])} majority",
        ),
        (
            "(b) subgroup accuracy",
            _pct(c["gen_subgroup_acc"]),
            _pct(c["real_subgroup_acc"]),
            f"{_pct(c['chance_subgroup_uniform'])} uniform",
        ),
        *_seen_rows(r.get("seen"), cfg),
        (
            "(c) Fréchet distance to real held-out renders (classifier features)",
            f"{f['generated_vs_real']:.3f}",
            "n/a"
            if f["real_vs_real_split"] is None
            else f"{f['real_vs_real_split']:.3f} (real half vs half)",
            "",
        ),
        (
            f"(d) inverse-prompt retrieval, 1 of {q['candidates']} captions",
            _pct(q["generated_acc"]),
            _pct(q["real_acc"]),
            _pct(q["chance"]),
        ),
    ]
    lines = [
        "# Evaluation results",
        "",
        f"Weights: `{r['weights']}`. Held-out prompts (unseen emoji concepts): "
        f"{c['generated_images']}, template `{cfg['caption_template']}`, style `{cfg['style']}`, "
        f"stages {', '.join(cfg['stages'])}, guidance scale {cfg.get('guidance_scale', 1.0)}, "
        f"seed {cfg['seed']}. Written by `cogview2 eval` in "
        f"{r['seconds']} s ({r['machine']}, {r['torch_threads']} torch threads).",
        "",
        "| metric | generated (or value) | real renders | chance |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {rr} | {ch} |" for a, b, rr, ch in rows),
        "",
        f"Classifier: {c['num_groups']} groups, {c['num_subgroups']} subgroups, trained on "
        f"{c['train_images']} training renders; real column: {c['real_images']} held-out renders. "
        "With few generated images the Fréchet distance is biased upwards; compare it with the "
        "real-vs-real figure of a similar sample size.",
        "",
        f"Held-out samples (`{SAMPLES_PNG}`):",
        "",
        f"![held-out samples]({SAMPLES_PNG})",
        "",
    ]
    lines += _fidelity_lines(r.get("fidelity"))
    if r.get("seen"):
        lines += [
            f"Training concepts, the regime of the README's prompts (`{SEEN_SAMPLES_PNG}`):",
            "",
            f"![samples of training concepts]({SEEN_SAMPLES_PNG})",
            "",
        ]
    return "\n".join(lines)
