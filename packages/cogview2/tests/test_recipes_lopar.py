"""Style recipes, the LoPAR order matrix and schedule, batching."""

from __future__ import annotations

import pytest
import torch

from cogview2.lopar import NUM_PASSES, ORDER_MATRIX, PASS_TOP_K, final_pass, pass_mask, tiled_order
from cogview2.recipes import RECIPES, get_recipe
from cogview2.stages._batching import batch_sizes


def test_recipes_match_reference_table() -> None:
    assert set(RECIPES) == {
        "none",
        "mainbody",
        "photo",
        "flat",
        "comics",
        "oil",
        "sketch",
        "isometric",
        "chinese",
        "watercolor",
        "plain",  # ours: the emoji demo models' default, not a released style
    }
    main = RECIPES["mainbody"]
    assert main.format("猫") == "猫 高清摄影 隔绝"
    assert (main.attn_plus, main.temp_all_gen, main.topk_gen, main.temp_cluster_gen) == (
        1.4,
        1.15,
        16,
        1.0,
    )
    assert (main.temp_all_dsr, main.topk_dsr, main.temp_cluster_dsr) == (1.0, 100, 0.89)
    for name in ("flat", "comics"):
        r = RECIPES[name]
        assert (r.temp_all_gen, r.topk_dsr, r.temp_cluster_dsr) == (1.1, 5, 0.4)
    assert RECIPES["chinese"].temp_all_gen == 1.12 and RECIPES["sketch"].temp_all_gen == 1.1
    assert RECIPES["none"].format("x") == "x"
    plain = RECIPES["plain"]
    assert plain.format("x") == "x" and (plain.temp_all_gen, plain.topk_gen) == (0.45, 4)
    # calibrated on the demo weights (docs/deviations.md #22): DSR nearly greedy, LoPAR pass 6
    assert (plain.topk_dsr, plain.temp_cluster_dsr) == (1, 0.1)
    assert plain.lopar_passes == (6,) and plain.lopar_top_k == (1,) * 6


def test_released_styles_sample_lopar_as_the_release() -> None:
    for name, recipe in RECIPES.items():
        if name != "plain":  # the demo weights' recipe is calibrated (docs/deviations.md)
            assert (recipe.lopar_top_k, recipe.lopar_temperature) == (PASS_TOP_K, 1.0)


@pytest.mark.parametrize(
    "changes",
    [
        {"lopar_top_k": (40, 40)},
        {"lopar_top_k": (40, 40, 40, 20, 20, 0)},
        {"lopar_top_k": (40, 40, 40, 20, 20, True)},
        {"lopar_temperature": 0.0},
    ],
)
def test_lopar_sampling_fields_are_checked(changes) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="lopar_"):
        replace(RECIPES["none"], **changes)


def test_itersr_uses_the_recipe_top_k_and_temperature(tiny_pipe, monkeypatch) -> None:
    """The pipeline passes the recipe's LoPAR top-k and temperature to every pass."""
    from dataclasses import replace

    import cogview2.stages.super_resolution as sr

    seen = []
    real = sr.TopKSampler

    def spy(top_k, temperature):
        seen.append((top_k, temperature))
        return real(top_k, temperature)

    monkeypatch.setattr(sr, "TopKSampler", spy)
    recipe = replace(RECIPES["none"], lopar_top_k=(1, 2, 3, 4, 5, 6), lopar_temperature=0.5)
    tiny_pipe("a cat", style=recipe, generator=torch.Generator().manual_seed(0), progress=False)
    assert seen == [(k, 0.5) for k in (1, 2, 3, 4, 5, 6)]


def test_unknown_style_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown style 'anime'.*mainbody"):
        get_recipe("anime")


def test_order_matrix_verbatim_counts() -> None:
    m = torch.tensor(ORDER_MATRIX)
    counts = {v: int((m == v).sum()) for v in range(-2, 7)}
    assert counts == {-2: 4, -1: 6, 0: 3, 1: 4, 2: 4, 3: 5, 4: 4, 5: 4, 6: 2}
    assert [int((m >= t).sum()) for t in range(1, 7)] == [23, 19, 15, 10, 6, 2]
    assert PASS_TOP_K == (40, 40, 40, 20, 20, 10) and NUM_PASSES == 6


def _simulate(grid: int) -> torch.Tensor:
    """Pass after which each position last changed (0 = never), by running the masks."""
    order = tiled_order(grid)
    last = torch.zeros(grid, grid, dtype=torch.long)
    for t in range(1, NUM_PASSES + 1):
        last[pass_mask(order, t)] = t
    return last


def test_schedule_finalises_each_position_once_where_the_matrix_says() -> None:
    grid = 12
    last = _simulate(grid)
    order = tiled_order(grid)
    assert torch.equal(last, final_pass(order))
    assert torch.equal(order, torch.tensor(ORDER_MATRIX).repeat(2, 2))
    # every regenerated position is final in exactly one pass; kept ones in none
    finals = torch.stack([last == t for t in range(1, NUM_PASSES + 1)])
    assert torch.equal(finals.sum(0), (order >= 1).long())
    # a position masked in pass t is masked in every earlier pass (it stays masked until final)
    for t in range(2, NUM_PASSES + 1):
        assert not (pass_mask(order, t) & ~pass_mask(order, t - 1)).any()


def test_no_two_adjacent_positions_final_in_the_same_pass_except_the_documented_pair() -> None:
    grid = 12
    last = _simulate(grid)
    pairs = set()
    for r in range(grid):
        for c in range(grid):
            for dr, dc in ((0, 1), (1, 0)):
                r2, c2 = r + dr, c + dc
                if r2 < grid and c2 < grid and last[r, c] > 0 and last[r, c] == last[r2, c2]:
                    pairs.add(((r % 6, c % 6), (r2 % 6, c2 % 6), int(last[r, c])))
    # only (5,4) with (0,4) of the tile below, both value 3, across the tile boundary
    assert pairs == {((5, 4), (0, 4), 3)}


def test_input_mask_restricts_the_passes() -> None:
    order = tiled_order(6)
    keep = torch.zeros(6, 6, dtype=torch.bool)
    keep[2:4, 2:4] = True
    for t in range(1, 7):
        assert not (pass_mask(order, t, keep) & ~keep).any()


def test_bad_grid_and_step() -> None:
    with pytest.raises(ValueError, match="multiple of 6"):
        tiled_order(10)
    with pytest.raises(ValueError, match="step=7"):
        pass_mask(tiled_order(6), 7)


@pytest.mark.parametrize(
    ("total", "size", "want"), [(5, 4, [4, 1]), (8, 4, [4, 4]), (3, 8, [3]), (0, 4, [])]
)
def test_batch_sizes_never_drop_the_remainder(total: int, size: int, want: list[int]) -> None:
    assert batch_sizes(total, size) == want


def test_lopar_runs_only_the_chosen_passes(tiny_pipe) -> None:
    """``passes``: the other passes re-mask nothing, so their positions keep the DSR tokens."""
    from cogview2.stages.super_resolution import iterative_super_resolution

    grid = tiny_pipe.itersr.config.high_grid
    high = torch.randint(0, 64, (1, grid * grid), generator=torch.Generator().manual_seed(0))
    seen = []
    out = iterative_super_resolution(tiny_pipe.itersr, [70, 71], high, passes=(5, 6),
                                     generator=torch.Generator().manual_seed(1),
                                     on_pass=lambda t, m: seen.append(t))  # fmt: skip
    assert seen == [5, 6]
    kept = (tiled_order(grid) < 5).flatten()
    assert torch.equal(out[0, kept], high[0, kept])
    for bad in ((), (2, 1), (0,), (7,), (3, 3)):
        with pytest.raises(ValueError, match="passes must be ascending"):
            iterative_super_resolution(tiny_pipe.itersr, [70], high, passes=bad)
    from dataclasses import replace

    with pytest.raises(ValueError, match="lopar_passes must be ascending"):
        replace(RECIPES["none"], lopar_passes=(6, 5))
