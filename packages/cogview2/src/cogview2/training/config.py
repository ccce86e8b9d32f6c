"""Recipe configuration: one TOML file with a section per training stage, as frozen dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coglm_core.distributed import MIXED_PRECISION_CHOICES

from ..config import check_completion_fill, check_guidance_scale
from ..stage_table import STAGES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "FINAL",
    "RETRAINABLE",
    "AssembleRecipe",
    "CogLMRecipe",
    "DSRRecipe",
    "DataRecipe",
    "ITERSRRecipe",
    "OptimConfig",
    "TextTokenizerRecipe",
    "TokenizeRecipe",
    "TrainingConfig",
    "VQVAERecipe",
    "load_training_config",
]


def _from_dict(cls: type, d: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"[{where}]: unknown keys {unknown}; allowed: {sorted(names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation and bookkeeping fields shared by the trained stages.

    Attributes:
        steps: Optimiser steps in total (a resumed run continues up to this).
        batch_size: Global batch (all processes together; divisible by the world size).
        lr: Peak AdamW learning rate (linear warm-up, cosine decay to ``min_lr_ratio``·lr).
        warmup_steps: Warm-up length.
        min_lr_ratio: Final learning-rate fraction.
        weight_decay: AdamW decay on matrices.
        grad_clip: Max global gradient norm (0 = off).
        checkpoint_every: Steps between checkpoints (the last step is always saved).
        log_every: Steps between log lines.
        seed: Seeds the model init, the data order and the masking.
        autocast: "bfloat16" / "float16" autocast, or "" for float32.
        fsdp: Shard with FSDP2 (``fully_shard`` per transformer layer) instead of DDP under
            ``torchrun``, on CPU or GPU (``coglm``, ``dsr``, ``itersr``; the VQ-VAE trainer is
            one process and refuses it).
        fsdp_mixed_precision: FSDP2 parameter dtype: ``"auto"`` (``autocast``'s dtype on CUDA,
            off on CPU or without autocast), ``"off"``, ``"bfloat16"`` or ``"float16"``;
            gradients are reduced and master weights kept in float32.
    """

    steps: int = 100
    batch_size: int = 8
    lr: float = 3e-4
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    checkpoint_every: int = 50
    log_every: int = 10
    seed: int = 0
    autocast: str = ""
    fsdp: bool = False
    fsdp_mixed_precision: str = "auto"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(
                f"need lr > 0, warmup_steps >= 0, 0 <= min_lr_ratio <= 1; got {self.lr}, "
                f"{self.warmup_steps}, {self.min_lr_ratio}"
            )
        if self.autocast not in ("", "bfloat16", "float16"):
            raise ValueError(f"autocast must be '', 'bfloat16' or 'float16', got {self.autocast!r}")
        if self.fsdp_mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ValueError(
                f"fsdp_mixed_precision must be one of {list(MIXED_PRECISION_CHOICES)}, got "
                f"{self.fsdp_mixed_precision!r}"
            )


@dataclass(frozen=True)
class DataRecipe:
    """Which part of the emoji data set the recipes read.

    Attributes:
        root: The data set folder (``cogview2 data emoji --out``).
        styles: Art styles to use (empty: all the data set holds).
        caption_templates: Caption templates; every training image gets one sample per template.
        low_size: Render size of stage 1 (160 px → 20×20 tokens).
        high_size: Render size of super-resolution (480 px → 60×60 tokens).
        skin_tones: Train CogLM, DSR and ITERSR on the skin-tone variants of a concept too.
            False keeps only the base emoji (``code == concept``): in the emoji data set the
            variants are half the training renders, so a small model may spend its capacity
            on distinct concepts instead (it did not help the demo models at their budget:
            docs/training.md). The tokenizers and the tokenised splits still cover every
            render, so changing this needs no re-tokenising.
        train_styles: Art styles CogLM, DSR and ITERSR train on (empty: every style of
            ``styles``). Like ``skin_tones`` it needs no re-tokenising: the tokenizers and the
            tokenised splits keep every style. Fewer renders per concept let a small model
            see each one more often in the same steps.
        train_groups: Unicode emoji groups (the records' ``group``, e.g. ``"food-drink"``)
            CogLM, DSR and ITERSR train on (empty: every group). No re-tokenising either. A
            small model that cannot learn every concept can learn the text-to-image mapping
            of a few hundred (docs/training.md).
    """

    root: str = "data/emoji"
    styles: tuple[str, ...] = ()
    caption_templates: tuple[str, ...] = ("name_style", "name")
    low_size: int = 160
    high_size: int = 480
    skin_tones: bool = True
    train_styles: tuple[str, ...] = ()
    train_groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # TOML has booleans; a string such as "false" would otherwise read as true
        if not isinstance(self.skin_tones, bool):
            raise ValueError(f"skin_tones must be true or false, got {self.skin_tones!r}")
        outside = sorted(set(self.train_styles) - set(self.styles)) if self.styles else []
        if outside:
            raise ValueError(
                f"train_styles {outside} are not in styles {list(self.styles)}: the recipes "
                "can only train on tokenised styles"
            )

    @property
    def style_filter(self) -> tuple[str, ...] | None:
        """``styles`` as `EmojiDataset` takes it (None: every style)."""
        return tuple(self.styles) or None


@dataclass(frozen=True)
class TextTokenizerRecipe:
    """Sentencepiece training on the captions (``icetk.train_text_tokenizer``).

    Attributes:
        vocab_size: Target piece count (a small corpus may give fewer).
        templates: Caption templates written to the corpus (keywords widen the vocabulary).
    """

    vocab_size: int = 4000
    templates: tuple[str, ...] = ("name_style", "name_keywords_style")


@dataclass(frozen=True)
class VQVAERecipe(OptimConfig):
    """VQ-VAE training (``icetk.train_image``) on random crops of both render sizes.

    Attributes:
        preset: ``icetk.VQVAEConfig`` preset ("small" or "tiny").
        num_codes: Codebook size.
        crop: Side of the training crops (px, a multiple of 8, at most ``data.low_size``).
        low_fraction: Fraction of crops taken from the low-size renders (the rest from the
            large ones), so the codes serve both grid scales.
    """

    preset: str = "small"
    num_codes: int = 1024
    crop: int = 64
    low_fraction: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fsdp:
            raise ValueError(
                "[vqvae] fsdp = true: icetk's VQ-VAE trainer runs in one process (rank 0 under "
                "torchrun); FSDP is for the coglm, dsr and itersr sections"
            )
        if self.preset not in ("small", "tiny"):
            raise ValueError(f"preset must be 'small' or 'tiny', got {self.preset!r}")
        if self.crop % 8 or not 0 <= self.low_fraction <= 1:
            raise ValueError(
                f"crop must be a multiple of 8 and low_fraction in [0, 1]; got {self.crop}, "
                f"{self.low_fraction}"
            )


@dataclass(frozen=True)
class TokenizeRecipe:
    """Tokenising the data set with the trained tokenizers.

    Attributes:
        text_slots: Text slots of a CogLM sample (English, pad, Chinese, pads); the sample is
            ``text_slots + 1 + low_grid²`` tokens.
        num_clusters: K-means clusters of the codebook (cluster sampling).
        batch_size: Images per VQ-VAE encoder call.
        high_images: Training images whose high-resolution render is tokenised (a seeded
            subset; 0 = all); the held-out split gets the same fraction. The
            super-resolution recipes only see this subset; at a CPU budget they see a few
            thousand samples, and encoding every 480 px render costs more than training on
            them.
        high_subset: ``"random"``: the ``high_images`` subset above. ``"trained"``: exactly
            the records the recipes train on (``[data] skin_tones``, ``train_styles``,
            ``train_groups``; the same filter in the held-out split), so the
            super-resolution models see every concept CogLM learnt; ``high_images`` must
            then be 0.
        seed: K-means and subset seed.
    """

    text_slots: int = 40
    num_clusters: int = 64
    batch_size: int = 32
    high_images: int = 0
    high_subset: str = "random"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.high_images < 0:
            raise ValueError(f"high_images must be >= 0 (0 = all), got {self.high_images}")
        if self.high_subset not in ("random", "trained"):
            raise ValueError(
                f"[tokenize] high_subset must be 'random' or 'trained', got {self.high_subset!r}"
            )
        if self.high_subset == "trained" and self.high_images:
            raise ValueError(
                "[tokenize] high_images must be 0 with high_subset = 'trained' (the trained "
                f"records decide the subset), got {self.high_images}"
            )


@dataclass(frozen=True)
class CogLMRecipe(OptimConfig):
    """CogLM pretraining at the low grid with the mixed strategies of paper §3.2.

    Attributes:
        num_layers: Transformer layers.
        hidden_size: Width.
        num_attention_heads: Heads.
        dropout: Hidden and attention dropout.
        variant: "released" or "paper" strategies (``coglm_core.strategies``).
        caption_ratio: Probability of the caption + masked-patch task per text-image sample.
        patch_size: Masked patch side of the caption task.
        text_dropout: Probability that a text-to-image sample is trained without its text, so
            that the model also learns the unconditional distribution that classifier-free
            guidance (``PipelineConfig.guidance_scale``) contrasts with the prompt.
        caption_end: The caption task also learns the pad that ends a caption, so that
            ``CogView2Pipeline.caption`` stops there (``paper`` variant; not in the release).
        caption_roundtrip: ``""`` (off), ``"decode"`` or ``"pipeline"`` (needs ``start_from``):
            add a caption-only copy of every sample whose image tokens made that round trip
            (``training.roundtrip``), so that captions of pictures the pipeline drew (which
            re-encode to other tokens) name what they show.
        prompted_infilling: Composite samples for text-guided infilling
            (``training.composites``; 0 = off): another training concept's picture pasted
            into a random box of one's picture, the box's cells the targets and the caption
            naming the pasted concept, so that ``CogView2Pipeline.complete`` draws the prompt
            in the box (not in the release).
        infill_box_sides: ``(smallest, largest)`` box side in stage-1 cells for those samples.
        infill_composite: What their box shows: ``"window"`` (the other concept's own cells
            there) or ``"shrink"`` (its whole picture shrunk into the box).
    """

    num_layers: int = 6
    hidden_size: int = 256
    num_attention_heads: int = 4
    dropout: float = 0.1
    variant: str = "paper"
    caption_ratio: float = 0.3
    patch_size: int = 4
    text_dropout: float = 0.0
    caption_end: bool = False
    caption_roundtrip: str = ""
    prompted_infilling: int = 0
    infill_box_sides: tuple[int, int] = (5, 12)
    infill_composite: str = "window"

    def __post_init__(self) -> None:
        super().__post_init__()
        count = self.prompted_infilling
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"[coglm] prompted_infilling must be an int >= 0, got {count!r}")
        sides = self.infill_box_sides
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in sides)
        if len(sides) != 2 or not ints or not 1 <= sides[0] <= sides[1]:
            raise ValueError(
                f"[coglm] infill_box_sides must be [smallest, largest] with 1 <= smallest <= "
                f"largest, got {list(sides)!r}"
            )
        if self.infill_composite not in ("window", "shrink"):
            raise ValueError(
                "[coglm] infill_composite must be 'window' or 'shrink', "
                f"got {self.infill_composite!r}"
            )
        if not isinstance(self.caption_end, bool):
            raise ValueError(f"[coglm] caption_end must be true or false, got {self.caption_end!r}")
        if self.caption_roundtrip not in ("", "decode", "pipeline"):
            raise ValueError(
                "[coglm] caption_roundtrip must be '', 'decode' or 'pipeline', "
                f"got {self.caption_roundtrip!r}"
            )
        if self.caption_end and self.variant != "paper":
            raise ValueError("[coglm] caption_end needs variant = 'paper'")
        for name in ("caption_ratio", "text_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not 0.0 <= value < 1.0:
                raise ValueError(f"[coglm] {name} must be a number in [0, 1), got {value!r}")


def _check_init(section: str, init: str) -> None:
    if init not in ("coglm", "start_from"):
        raise ValueError(f"[{section}] init must be 'coglm' or 'start_from', got {init!r}")


@dataclass(frozen=True)
class DSRRecipe(OptimConfig):
    """Direct super-resolution fine-tuning (attention_plus + extra positions; base frozen).

    Attributes:
        text_slots: ``DSRConfig.text_slots``.
        cross_kernel: ``DSRConfig.cross_kernel``.
        local_kernel: ``DSRConfig.local_kernel``.
        train_base: Fine-tune a copy of CogLM's transformer too (the release freezes it and
            shares it with stage 1). A small CogLM's frozen MLPs leave DSR too little to
            learn with; a trained copy is stored in ``dsr/base/`` of the weights folder
            (docs/deviations.md).
        init: ``"coglm"``: start from the run's CogLM (attention_plus copied from its
            attention, positions tiled), as the release. ``"start_from"``: continue the DSR of
            the ``start_from`` weights folder (its weights; a new optimiser), to train the
            shipped model further in a later session.
    """

    text_slots: int = 40
    cross_kernel: tuple[int, int] = (5, 5)
    local_kernel: tuple[int, int] = (9, 5)
    train_base: bool = False
    init: str = "coglm"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.train_base, bool):
            raise ValueError(f"[dsr] train_base must be true or false, got {self.train_base!r}")
        _check_init("dsr", self.init)


@dataclass(frozen=True)
class ITERSRRecipe(OptimConfig):
    """Iterative super-resolution fine-tuning (whole base + extra positions, BERT-style).

    Attributes:
        text_slots: ``ITERSRConfig.text_slots``.
        local_kernel: ``ITERSRConfig.local_kernel``.
        mask_ratios: A ratio is drawn per sample; that fraction of hi-res tokens becomes BOI.
        init: ``"coglm"`` (a copy of the run's CogLM) or ``"start_from"`` (continue the
            ITERSR of the ``start_from`` weights folder), as `DSRRecipe.init`.
    """

    text_slots: int = 16
    local_kernel: tuple[int, int] = (9, 5)
    mask_ratios: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 0.9)
    init: str = "coglm"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_init("itersr", self.init)
        if not self.mask_ratios or not all(0 < r <= 1 for r in self.mask_ratios):
            raise ValueError(f"mask_ratios must be in (0, 1], got {self.mask_ratios}")


@dataclass(frozen=True)
class AssembleRecipe:
    """Writing the pipeline weights folder.

    Attributes:
        out: Output folder (the pipeline's ``save_pretrained`` format).
        dtype: "float16" or "float32".
        max_megabytes: Refuse to finish when the folder is larger (MB = 10⁶ bytes).
        guidance_scale: The pipeline's default stage-1 classifier-free guidance
            (``PipelineConfig.guidance_scale``; 1 = off). Only meaningful for a CogLM trained
            with ``[coglm] text_dropout > 0``.
        caption_temperature: The pipeline's default caption temperature
            (``PipelineConfig.caption_temperature``).
        default_stages: The pipeline's default stages (``PipelineConfig.default_stages``).
        completion_fill: How the pipeline's completion fills a box when a call does not say
            (``PipelineConfig.completion_fill``: ``"infill"`` or ``"compose"``).
    """

    out: str = "weights/emoji"
    dtype: str = "float16"
    max_megabytes: float = 40.0
    guidance_scale: float = 1.0
    caption_temperature: float = 1.0
    default_stages: tuple[str, ...] = STAGES
    completion_fill: str = "infill"

    def __post_init__(self) -> None:
        check_completion_fill(self.completion_fill)
        if self.dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be 'float16' or 'float32', got {self.dtype!r}")
        check_guidance_scale(self.guidance_scale)
        if not self.caption_temperature > 0:
            raise ValueError(f"caption_temperature must be > 0, got {self.caption_temperature!r}")


FINAL = "final"
"""A trained stage's finished model: ``<workdir>/<stage>/final/``."""

RETRAINABLE: tuple[str, ...] = ("coglm", "dsr", "itersr")
"""The models a run on ``start_from`` can train (``TrainingConfig.retrain``)."""

_SECTIONS: dict[str, type] = {
    "data": DataRecipe,
    "text_tokenizer": TextTokenizerRecipe,
    "vqvae": VQVAERecipe,
    "tokenize": TokenizeRecipe,
    "coglm": CogLMRecipe,
    "dsr": DSRRecipe,
    "itersr": ITERSRRecipe,
    "assemble": AssembleRecipe,
}


@dataclass(frozen=True)
class TrainingConfig:
    """Every recipe's settings; ``workdir`` holds each stage's outputs and checkpoints.

    Attributes:
        workdir: Run folder (``<workdir>/<stage>/``).
        start_from: A pipeline weights folder (``CogView2Pipeline.save_pretrained``) to build
            on (empty: train everything). Its tokenizer and cluster labels are used as they
            are (the ``text-tokenizer`` and ``vqvae`` recipes do not run), and so are the models
            that ``retrain`` does not name.
        retrain: With ``start_from``: the models this run trains, a subset of ``"coglm"``,
            ``"dsr"``, ``"itersr"``. ``coglm`` fine-tunes ``start_from``'s CogLM; ``dsr`` and
            ``itersr`` train new models on the CogLM of this run. The other recipes are
            skipped by ``all`` and refused alone; ``assemble`` takes their models from
            ``start_from``.
    """

    workdir: str = "runs/emoji"
    start_from: str = ""
    retrain: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.retrain) - set(RETRAINABLE))
        if unknown:
            raise ValueError(f"retrain {unknown} are not models; choose from {list(RETRAINABLE)}")
        if bool(self.start_from) != bool(self.retrain):
            raise ValueError(
                "start_from and retrain go together: start_from names the weights folder, "
                f"retrain the models trained on it; got start_from={self.start_from!r}, "
                f"retrain={list(self.retrain)}"
            )

        for name in ("dsr", "itersr"):
            if getattr(self, name).init == "start_from" and not self.start_from:
                raise ValueError(
                    f"[{name}] init = 'start_from' needs start_from (a weights folder)"
                )
        if self.coglm.caption_roundtrip == "pipeline" and not self.start_from:
            raise ValueError(
                "[coglm] caption_roundtrip = 'pipeline' needs start_from (a weights folder whose "
                "SR stages draw the pictures)"
            )

    def trains(self, model: str) -> bool:
        """Whether this run trains ``model`` (``"coglm"``, ``"dsr"`` or ``"itersr"``) rather
        than taking it from ``start_from``."""
        return not self.start_from or model in self.retrain

    data: DataRecipe = field(default_factory=DataRecipe)
    text_tokenizer: TextTokenizerRecipe = field(default_factory=TextTokenizerRecipe)
    vqvae: VQVAERecipe = field(default_factory=VQVAERecipe)
    tokenize: TokenizeRecipe = field(default_factory=TokenizeRecipe)
    coglm: CogLMRecipe = field(default_factory=CogLMRecipe)
    dsr: DSRRecipe = field(default_factory=DSRRecipe)
    itersr: ITERSRRecipe = field(default_factory=ITERSRRecipe)
    assemble: AssembleRecipe = field(default_factory=AssembleRecipe)

    @property
    def stage_dirs(self) -> dict[str, Path]:
        """Output folder of every stage."""
        root = Path(self.workdir)
        return {name: root / name for name in _SECTIONS if name not in ("data", "assemble")}

    @property
    def coglm_folder(self) -> Path:
        """The CogLM of this run, which DSR and ITERSR build on: ``coglm/final``, or
        ``start_from``'s when this run does not train one."""
        if self.trains("coglm"):
            return self.stage_dirs["coglm"] / FINAL
        return Path(self.start_from) / "coglm"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingConfig:
        """Build from a parsed TOML document (unknown sections or keys raise ValueError)."""
        top = ("workdir", "start_from", "retrain")
        unknown = sorted(set(d) - set(_SECTIONS) - set(top))
        if unknown:
            raise ValueError(
                f"unknown sections {unknown}; allowed: {', '.join(top)}, {sorted(_SECTIONS)}"
            )
        parts = {k: _from_dict(cls_, dict(d.get(k, {})), k) for k, cls_ in _SECTIONS.items()}
        start_from, retrain = d.get("start_from", ""), d.get("retrain", [])
        if not isinstance(start_from, str):
            raise ValueError(f"start_from must be a folder path string, got {start_from!r}")
        if not isinstance(retrain, list) or not all(isinstance(m, str) for m in retrain):
            raise ValueError(f"retrain must be a list of model names, got {retrain!r}")
        return cls(
            workdir=str(d.get("workdir", cls.workdir)),
            start_from=start_from,
            retrain=tuple(retrain),
            **parts,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (TOML/JSON friendly)."""
        return dataclasses.asdict(self)


def load_training_config(path: str | Path) -> TrainingConfig:
    """Read a recipe TOML file (see ``packages/cogview2/configs/``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: bad TOML, unknown sections/keys or invalid values.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} not found")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{p}: invalid TOML: {err}") from err
    return TrainingConfig.from_dict(doc)
