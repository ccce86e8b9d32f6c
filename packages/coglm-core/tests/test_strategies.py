import pytest
import torch

from coglm_core import (
    CogLMConfig,
    RegionMask,
    TrainConfig,
    coglm_attention_mask,
    image_text_understanding_example,
    infill,
    pretraining_example,
    prompted_infilling_example,
    text_image_generation_example,
    text_only_example,
)


@pytest.fixture
def config() -> CogLMConfig:
    return CogLMConfig.tiny()


def _sample(config: CogLMConfig, bilingual: bool = True, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(70, 96, (32,), generator=g)  # English ids
    t[4] = config.pad_id
    if bilingual:
        t[5:8] = torch.randint(96, 120, (3,), generator=g)  # Chinese
        t[8:16] = config.pad_id
    else:
        t[5:16] = config.pad_id
    t[-16:] = torch.randint(0, 64, (16,), generator=g)
    return t


def test_text_to_image_released(config: CogLMConfig) -> None:
    t = _sample(config, bilingual=False)
    e = text_image_generation_example(t, config, torch.Generator().manual_seed(0))
    assert e.input_ids[-17] == config.boi_id and e.position_ids[-17] == config.boi_position
    assert e.position_ids[-16:].tolist() == list(range(41, 57)) and e.position_ids[:4].tolist() == [
        0,
        1,
        2,
        3,
    ]
    assert e.loss_mask.sum() == 16 and e.loss_mask[-17:-1].all()
    m = e.attention_mask
    assert m[:, :4].all() and not m[:, 4:15].any()
    assert torch.equal(m[-17:, -17:], torch.ones(17, 17, dtype=torch.bool).tril())
    assert torch.equal(e.labels[:-1], e.input_ids[1:])


def test_caption_and_patches_released(config: CogLMConfig) -> None:
    t = _sample(config)
    e = image_text_understanding_example(t, config, torch.Generator().manual_seed(1))
    m = e.attention_mask
    # segments: English [1, 5) with start 0, Chinese [6, 9) with start 5 (after the shift)
    assert e.input_ids[0] == config.boe_id and e.input_ids[5] == config.boc_id
    assert torch.equal(e.input_ids[1:5], t[0:4])
    assert not m[0:5, 5:9].any() and not m[5:9, 0:5].any()  # segments do not see each other
    assert m[0:9, -16:].all()  # text sees the whole image
    assert e.position_ids[5:9].tolist() == [0, 1, 2, 3]
    assert e.loss_mask[0:4].all() and not e.loss_mask[4] and e.loss_mask[5:8].all()
    img = m[-16:, -16:]
    context = img.all(0)  # context columns are visible to all image rows
    assert not m[-16:, :-16].any()
    assert 0 < int((~context).sum()) < 16
    rows_ctx = img[context]
    assert torch.equal(rows_ctx, context.expand_as(rows_ctx))  # context sees only context


def test_caption_and_patches_paper_is_eq1(config: CogLMConfig) -> None:
    t = _sample(config)
    e = image_text_understanding_example(
        t, config, torch.Generator().manual_seed(2), variant="paper", mask_ratio=0.75
    )
    assert e.attention_mask is None and e.in_region is not None
    assert e.in_region[:16].float().mean() >= 0.75
    regions = [(i, i + 1) for i in e.in_region.nonzero().flatten().tolist()]
    assert torch.equal(e.dense_mask(), coglm_attention_mask(32, regions))
    assert e.input_ids[16] in (config.boe_id, config.boc_id)
    counted = e.loss_mask.nonzero().flatten()
    assert e.in_region[counted].all() and e.in_region[counted + 1].all()


def test_caption_end_adds_exactly_the_end_of_the_caption(config: CogLMConfig) -> None:
    """``caption_end``: the last caption token also predicts the pad after it (the end); the
    example is otherwise the paper one, and without the flag nothing follows a caption."""
    for seed in range(6):
        t = _sample(config, seed=seed)
        plain, ended = (
            image_text_understanding_example(
                t, config, torch.Generator().manual_seed(seed), variant="paper", caption_end=flag
            )
            for flag in (False, True)
        )
        assert torch.equal(plain.input_ids, ended.input_ids)
        assert torch.equal(plain.in_region, ended.in_region)
        extra = (ended.loss_mask & ~plain.loss_mask).nonzero().flatten().tolist()
        assert not (plain.loss_mask & ~ended.loss_mask).any() and len(extra) == 1
        (last,) = extra  # the last caption token, whose label is the pad
        assert ended.labels[last] == config.pad_id != ended.input_ids[last]
        assert ended.input_ids[16] in (config.boe_id, config.boc_id) and last > 16
        assert ended.in_region[last + 1]  # the pad it predicts is in its region (causal)
        assert plain.labels[plain.loss_mask].ne(config.pad_id).all()
    with pytest.raises(ValueError, match="caption_end needs the 'paper' variant"):
        image_text_understanding_example(t, config, variant="released", caption_end=True)
    with pytest.raises(ValueError, match="caption_end needs variant='paper'"):
        TrainConfig(caption_end=True)


def test_released_patch_ratio_is_about_half() -> None:
    config = CogLMConfig.cogview2_6b()
    t = torch.randint(20100, 83000, (512,))
    t[30] = config.pad_id
    t[31:112] = config.pad_id
    t[-400:] = torch.randint(0, 20000, (400,))
    ratios = []
    for seed in range(20):
        m = image_text_understanding_example(
            t, config, torch.Generator().manual_seed(seed)
        ).attention_mask
        ratios.append(float((~m[-400:, -400:].all(0)).float().mean()))
    assert 0.4 < sum(ratios) / len(ratios) < 0.62


def test_text_only_spans(config: CogLMConfig) -> None:
    t = torch.randint(70, 120, (32,))
    e = text_only_example(t, config, torch.Generator().manual_seed(0))
    assert e.position_ids.tolist() == list(range(32))
    counted = e.loss_mask.nonzero().flatten()
    assert counted.numel() >= 1 and e.in_region[counted].all() and e.in_region[counted + 1].all()
    assert isinstance(RegionMask(e.in_region[None]).dense(), torch.Tensor)


def test_dispatch(config: CogLMConfig) -> None:
    kinds = set()
    for seed in range(12):
        e = pretraining_example(_sample(config), config, torch.Generator().manual_seed(seed))
        kinds.add(bool(e.input_ids[-17] == config.boi_id))
    assert kinds == {True, False}
    assert pretraining_example(torch.randint(70, 120, (32,)), config).in_region is not None
    with pytest.raises(ValueError, match="pure image"):
        pretraining_example(torch.randint(0, 64, (32,)), config)
    with pytest.raises(ValueError, match="sample must be"):
        pretraining_example(torch.randint(0, 64, (31,)), config)


@pytest.mark.parametrize("variant", ["released", "paper"])
def test_dropped_text_leaves_boi_and_the_image_alone(config: CogLMConfig, variant: str) -> None:
    t = _sample(config)
    kept = text_image_generation_example(
        t, config, torch.Generator().manual_seed(3), variant=variant
    )
    e = text_image_generation_example(
        t, config, torch.Generator().manual_seed(3), variant=variant, drop_text=True
    )
    n_img = config.num_image_positions
    m = e.dense_mask()
    boi = int((e.input_ids == config.boi_id).nonzero()[0])
    # the image rows see BOI and earlier image tokens only: no text column is visible to anyone
    visible = m[boi : boi + n_img + 1].any(0).nonzero().flatten()
    assert visible.tolist() == list(range(boi, boi + n_img + 1))
    assert torch.equal(
        m[boi : boi + n_img + 1, boi : boi + n_img + 1], torch.ones(17, 17).tril().bool()
    )
    assert torch.equal(e.input_ids[boi + 1 : boi + 1 + n_img], t[-n_img:])
    assert e.position_ids[boi] == config.boi_position
    assert torch.equal(e.loss_mask, kept.loss_mask.roll(boi - int(kept.loss_mask.nonzero()[0])))
    assert int(e.loss_mask.sum()) == n_img


def test_text_dropout_rate_and_default_stream(config: CogLMConfig) -> None:
    def t2i(e) -> bool:  # a text-to-image example, with or without its text
        return bool((e.input_ids == config.boi_id).any())

    dropped = total = 0
    for seed in range(200):
        e = pretraining_example(
            _sample(config),
            config,
            torch.Generator().manual_seed(seed),
            variant="paper",
            text_dropout=0.5,
        )
        if t2i(e):
            total += 1
            dropped += int(e.input_ids[0] == config.boi_id)
        # text_dropout=0 draws nothing extra: the same examples as before the option existed
        a = pretraining_example(_sample(config), config, torch.Generator().manual_seed(seed))
        b = pretraining_example(
            _sample(config), config, torch.Generator().manual_seed(seed), text_dropout=0.0
        )
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.loss_mask, b.loss_mask)
    assert 0.35 < dropped / total < 0.65
    with pytest.raises(ValueError, match="text_dropout"):
        TrainConfig(text_dropout=1.0)


def _box(config: CogLMConfig, top: int, left: int, size: int) -> torch.Tensor:
    g = config.image_grid_size
    region = torch.zeros(g, g, dtype=torch.bool)
    region[top : top + size, left : left + size] = True
    return region.flatten()


@pytest.mark.parametrize("box", [(1, 1, 2), (0, 0, 2), (2, 1, 2)])
def test_prompted_infilling_trains_what_infill_samples(tiny_model, box) -> None:
    """At every cell of the region, the training forward's logits are the ones `infill` samples
    from (given the true earlier cells), and only those predictions count."""
    config = tiny_model.config
    t = _sample(config, bilingual=False, seed=4)
    region = _box(config, *box)
    e = prompted_infilling_example(t, region, config, torch.Generator().manual_seed(0))
    assert int(e.loss_mask.sum()) == int(region.sum())
    assert torch.equal(e.labels[e.loss_mask], t[-16:][region])  # raster order of the region
    with torch.no_grad():
        logits = tiny_model(
            e.input_ids[None], e.position_ids[None], attention_mask=e.attention_mask[None, None]
        ).logits[0, e.loss_mask, : config.num_image_tokens]
    seen: list[torch.Tensor] = []
    targets = iter(t[-16:][region].tolist())

    def teacher(scores: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        seen.append(scores[0].clone())
        return torch.tensor([next(targets)])  # feed the true cell, as training does

    image = torch.where(region, torch.full_like(t[-16:], -1), t[-16:])[None]
    prefix = torch.cat([t[:4], torch.tensor([config.boi_id])])
    filled = infill(tiny_model, prefix, image, sampler=teacher, per_region=False, upweight=0)
    assert torch.equal(filled[0], t[-16:])
    torch.testing.assert_close(torch.stack(seen).double(), logits, rtol=1e-9, atol=1e-9)


def test_prompted_infilling_rejects_bad_regions(config: CogLMConfig) -> None:
    t = _sample(config)
    with pytest.raises(ValueError, match="at least one True"):
        prompted_infilling_example(t, torch.zeros(16, dtype=torch.bool), config)
    with pytest.raises(ValueError, match="at least one True"):
        prompted_infilling_example(t, torch.ones(9, dtype=torch.bool), config)


def test_make_batch_trains_region_pairs_as_prompted_infilling(config: CogLMConfig) -> None:
    from coglm_core.training import make_batch

    plain, pair = _sample(config, seed=1), (_sample(config, seed=2), _box(config, 1, 1, 2))
    batch = make_batch([plain, pair], [0, 1], config, TrainConfig(variant="paper"), step=0)
    assert int(batch["loss_mask"][1].sum()) == 4  # the 2×2 box
    assert batch["attention_mask"].shape == (2, 1, 32, 32)
