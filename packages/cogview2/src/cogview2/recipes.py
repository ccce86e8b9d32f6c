"""Style recipes of the released text-to-image script (reference.md §3.1) as frozen data."""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

from .lopar import NUM_PASSES, PASS_TOP_K


@dataclass(frozen=True)
class SamplingRecipe:
    """Prompt template and sampling constants of one style.

    Attributes:
        name: Style name (``"mainbody"``, ``"flat"``, ...).
        template: Prompt template; ``{}`` is the raw prompt. The released templates end with
            ``<start_of_image>``; here the BOI id is appended by the stage instead, so the
            template holds only the text part (see docs/deviations.md).
        attn_plus: Upweighting added to the scores of text columns in stage 1 (paper eq. 7).
        temp_all_gen: Stage-1 temperature T1 (before the cluster masses).
        topk_gen: Stage-1 number of clusters kept.
        temp_cluster_gen: Stage-1 in-cluster temperature factor T2.
        temp_all_dsr: DSR temperature T1. The release passes 1.0 regardless (§4.4).
        topk_dsr: DSR number of clusters kept.
        temp_cluster_dsr: DSR in-cluster temperature factor T2.
        lopar_top_k: Top-k of each LoPAR pass of iterative super-resolution (the release:
            40, 40, 40, 20, 20, 10 for every style).
        lopar_temperature: Temperature of every LoPAR pass (the release: 1.0).
        lopar_passes: The LoPAR passes run, from ``1..6`` (the release: all six). A pass
            re-masks every position whose order value is at least its number, so the early
            passes redraw most of the picture (pass 1: 75 %) from the little that is left.
    """

    name: str
    template: str
    attn_plus: float = 1.4
    temp_all_gen: float = 1.15
    topk_gen: int = 16
    temp_cluster_gen: float = 1.0
    temp_all_dsr: float = 1.0
    topk_dsr: int = 100
    temp_cluster_dsr: float = 0.89
    lopar_top_k: tuple[int, ...] = PASS_TOP_K
    lopar_temperature: float = 1.0
    lopar_passes: tuple[int, ...] = tuple(range(1, NUM_PASSES + 1))

    def __post_init__(self) -> None:
        if len(self.lopar_top_k) != NUM_PASSES or not all(
            isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in self.lopar_top_k
        ):
            raise ValueError(
                f"lopar_top_k needs {NUM_PASSES} ints >= 1 (one per pass), got {self.lopar_top_k!r}"
            )
        passes = self.lopar_passes
        if (
            not passes
            or list(passes) != sorted(set(passes))
            or not set(passes) <= set(range(1, NUM_PASSES + 1))
        ):
            raise ValueError(
                f"lopar_passes must be ascending, distinct, in 1..{NUM_PASSES}; got {passes!r}"
            )
        if not self.lopar_temperature > 0:
            raise ValueError(f"lopar_temperature must be > 0, got {self.lopar_temperature!r}")

    def format(self, prompt: str) -> str:
        """The text part of the prompt for this style (``template.format(prompt)``)."""
        return self.template.format(prompt)


def _flat_like(name: str, template: str) -> SamplingRecipe:
    return SamplingRecipe(name, template, temp_all_gen=1.1, topk_dsr=5, temp_cluster_dsr=0.4)


RECIPES: MappingProxyType[str, SamplingRecipe] = MappingProxyType(
    {
        "none": SamplingRecipe("none", "{}"),
        "mainbody": SamplingRecipe("mainbody", "{} 高清摄影 隔绝"),
        "photo": SamplingRecipe("photo", "{} 高清摄影"),
        "flat": _flat_like("flat", "{} 平面风格"),
        "comics": _flat_like("comics", "{} 漫画 隔绝"),
        "oil": SamplingRecipe("oil", "{} 油画风格"),
        "sketch": SamplingRecipe("sketch", "{} 素描风格", temp_all_gen=1.1),
        "isometric": SamplingRecipe("isometric", "{} 等距矢量图", temp_all_gen=1.1),
        "chinese": SamplingRecipe("chinese", "{} 水墨国画", temp_all_gen=1.12),
        "watercolor": SamplingRecipe("watercolor", "{} 水彩画风格"),
        # Not in the release: the recipe of the small emoji demo models (docs/deviations.md
        # 17 and 22). Stage 1: the prompt as is, sampled colder (T1 0.45, 4 clusters; at the
        # release's T1 = 1.15 their samples are noisy), no text upweighting (attn_plus 0: it
        # raised their image loss given the caption on every concept measured). DSR and LoPAR
        # calibrated on the per-stage fidelity of 16 training concepts
        # (bench/calibrate_sampling.py, deviations.md 22): DSR from the most likely cluster,
        # nearly greedy (1 cluster, T2 0.1: +0.8 dB over the release's flat-art 5 clusters /
        # T2 0.4, +1.2 dB over its 100 / 0.89); LoPAR only its last pass, greedy (every
        # schedule measured lowered the picture, the release's by 4.0 dB, this one by 0.3 dB).
        "plain": SamplingRecipe(
            "plain",
            "{}",
            temp_all_gen=0.45,
            topk_gen=4,
            attn_plus=0.0,
            topk_dsr=1,
            temp_cluster_dsr=0.1,
            lopar_top_k=(1, 1, 1, 1, 1, 1),
            lopar_passes=(6,),
        ),
    }
)
"""Every released style (reference.md §3.1), plus ``plain`` (the demo models' default). The
dead parameters ``temp_all_itersr`` and ``topk_itersr`` are not carried; ``temp_all_dsr`` is
1.0, the value the release actually uses."""


def get_recipe(style: str | SamplingRecipe) -> SamplingRecipe:
    """Look a style up by name (or pass a `SamplingRecipe` through).

    Raises:
        ValueError: unknown style name; the message lists the known ones.
    """
    if isinstance(style, SamplingRecipe):
        return style
    if style not in RECIPES:
        raise ValueError(f"unknown style {style!r}; known styles: {sorted(RECIPES)}")
    return RECIPES[style]


def custom_recipe(base: str = "none", **changes: object) -> SamplingRecipe:
    """A copy of a named recipe with some fields changed (e.g. ``template="{}"``)."""
    return replace(get_recipe(base), **changes)  # type: ignore[arg-type]
