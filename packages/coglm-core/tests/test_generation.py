import pytest
import torch

from coglm_core import (
    CogLM,
    generate,
    multinomial_sampler,
    text_image_generation_mask,
    text_image_position_ids,
    text_upweighting_bias,
)


def _stage1(model: CogLM, batch: int = 3, text_len: int = 5):
    c = model.config
    n = c.num_image_positions
    tokens = torch.full((batch, text_len + 1 + n), -1)
    tokens[:, :text_len] = torch.randint(
        70, 120, (text_len,), generator=torch.Generator().manual_seed(3)
    )
    tokens[:, text_len] = c.boi_id
    pos = text_image_position_ids(text_len, c)
    mask = text_image_generation_mask(text_len, n)
    bias = text_upweighting_bias(tokens.shape[1], text_len, 1.4, dtype=torch.float64)
    return tokens, pos, mask, bias


@pytest.mark.parametrize("known_after_prefix", [False, True])
def test_cached_equals_recompute_token_for_token(
    tiny_model: CogLM, known_after_prefix: bool
) -> None:
    tokens, pos, mask, bias = _stage1(tiny_model)
    if known_after_prefix:  # completion: known tokens after the prefix are fed, not sampled
        tokens[:, 9] = 7
        tokens[:, 14] = 9
    runs = []
    for use_cache in (True, False):
        runs.append(
            generate(
                tiny_model,
                tokens,
                pos,
                attention_mask=mask,
                attention_bias=bias,
                sampler=multinomial_sampler(),
                generator=torch.Generator().manual_seed(0),
                logits_range=(0, 64),
                use_cache=use_cache,
            )
        )
    assert torch.equal(runs[0], runs[1])
    out = runs[0]
    assert (out >= 0).all() and (out[:, 6:] < 64).all()
    assert not torch.equal(out[0], out[1])  # rows sample independently
    if known_after_prefix:
        assert (out[:, 9] == 7).all() and (out[:, 14] == 9).all()


def test_sampler_sees_the_previous_positions_logits(tiny_model: CogLM) -> None:
    tokens, pos, mask, _ = _stage1(tiny_model, batch=1)
    seen = []

    def greedy(logits: torch.Tensor, generator) -> torch.Tensor:
        seen.append(logits)
        return logits.argmax(-1)

    out = generate(
        tiny_model, tokens, pos, attention_mask=mask, sampler=greedy, logits_range=(0, 64)
    )
    full = tiny_model(out, pos, attention_mask=mask, logits_range=(0, 64)).logits
    torch.testing.assert_close(torch.stack(seen, 1)[0], full[0, 5:-1])


def test_stop_ids_and_allowed_ids(tiny_model: CogLM) -> None:
    tokens = torch.full((2, 10), -1)
    tokens[:, :2] = torch.tensor([126, 70])
    mask = torch.ones(10, 10, dtype=torch.bool).tril()
    allowed = torch.zeros(128, dtype=torch.bool)
    allowed[[80, 81]] = True
    out = generate(
        tiny_model,
        tokens,
        torch.arange(10),
        attention_mask=mask,
        sampler=multinomial_sampler(),
        generator=torch.Generator().manual_seed(1),
        allowed_ids=allowed,
    )
    assert set(out[:, 2:].flatten().tolist()) <= {80, 81}
    calls = []

    def scripted(logits: torch.Tensor, generator) -> torch.Tensor:
        step = len(calls)
        calls.append(step)
        # row 0 stops at its 2nd sample, row 1 at its 4th (80 is index 80 of the full vocabulary)
        return torch.tensor([80 if step == 1 else 81, 80 if step == 3 else 81])

    out = generate(
        tiny_model, tokens, torch.arange(10), attention_mask=mask, sampler=scripted, stop_ids=(80,)
    )
    assert out[0].tolist() == [126, 70, 81, 80] + [-1] * 6
    assert out[1].tolist() == [126, 70, 81, 81, 81, 80] + [-1] * 4
    assert len(calls) == 4  # the loop ends once every row has stopped


def test_validation(tiny_model: CogLM) -> None:
    tokens, pos, mask, _ = _stage1(tiny_model)
    bad = tokens.clone()
    bad[:, 0] = -1
    with pytest.raises(ValueError, match="first token"):
        generate(tiny_model, bad, pos, attention_mask=mask, sampler=multinomial_sampler())
    with pytest.raises(ValueError, match="attention_mask"):
        generate(tiny_model, tokens, pos, attention_mask=mask[:3], sampler=multinomial_sampler())
    with pytest.raises(ValueError, match="sampler returned"):
        generate(
            tiny_model, tokens, pos, attention_mask=mask, sampler=lambda z, g: z.argmax(-1) + 999
        )


@pytest.mark.gpu
def test_cached_equals_recompute_on_cuda(tiny_model: CogLM) -> None:
    model = tiny_model.to("cuda")
    tokens, pos, mask, bias = _stage1(model)
    runs = [
        generate(
            model,
            tokens.cuda(),
            pos.cuda(),
            attention_mask=mask.cuda(),
            attention_bias=bias.cuda(),
            sampler=multinomial_sampler(),
            generator=torch.Generator("cuda").manual_seed(0),
            logits_range=(0, 64),
            use_cache=use_cache,
        )
        for use_cache in (True, False)
    ]
    assert torch.equal(runs[0], runs[1])
