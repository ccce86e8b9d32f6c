import torch

from coglm_core import CogLM, infill, infilling_plan, multinomial_sampler, released_region_cells


def _image(config, batch=2):
    img = torch.randint(0, config.num_image_tokens, (batch, config.num_image_positions))
    img[:, [5, 6, 9, 10, 12]] = -1  # 4x4 grid: (1,1),(1,2),(2,1),(2,2),(3,0)
    return img


def test_released_region_moves_the_left_context_token(tiny_model: CogLM) -> None:
    region = released_region_cells(_image(tiny_model.config), tiny_model.config)
    expected = torch.zeros(16, dtype=torch.bool)
    expected[[4, 5, 6, 8, 9, 10, 12]] = True  # (3,0) starts a row: no moved token
    assert torch.equal(region, expected)


def test_plan_layout(tiny_model: CogLM) -> None:
    c = tiny_model.config
    img = _image(c)
    plan = infilling_plan(torch.tensor([70, 71, c.boi_id]), img, released_region_cells(img, c), c)
    assert plan.text_len == 3 and plan.tokens.shape == (2, 3 + 1 + 16)
    assert plan.tokens[0, 3] == c.boi_id and plan.position_ids[3] == c.boi_position
    assert torch.equal(plan.position_ids[4:], plan.cells + c.image_position_offset)
    assert plan.cells[-7:].tolist() == [4, 5, 6, 8, 9, 10, 12]
    assert (plan.tokens[:, 4:13] >= 0).all()  # context first


def test_infill_keeps_known_cells_and_fills_holes(tiny_model: CogLM) -> None:
    img = _image(tiny_model.config)
    for per_region in (True, False):
        out = infill(
            tiny_model,
            torch.tensor([70, 71, 125]),
            img,
            sampler=multinomial_sampler(),
            generator=torch.Generator().manual_seed(0),
            per_region=per_region,
        )
        assert (out >= 0).all() and (out < 64).all()
        known = img >= 0
        assert torch.equal(out[known], img[known])
