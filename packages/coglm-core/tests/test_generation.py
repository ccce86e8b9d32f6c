import dataclasses

import pytest
import torch

from coglm_core import (
    CogLM,
    Guidance,
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


def _draw(model: CogLM, tokens, pos, mask, bias, *, seed: int, guidance=None, use_cache=True):
    """``generate`` with a multinomial sampler over the 64 image ids, seeded."""
    return generate(
        model,
        tokens,
        pos,
        attention_mask=mask,
        attention_bias=bias,
        sampler=multinomial_sampler(),
        generator=torch.Generator().manual_seed(seed),
        logits_range=(0, 64),
        guidance=guidance,
        use_cache=use_cache,
    )


@pytest.mark.parametrize("known_after_prefix", [False, True])
def test_cached_equals_recompute_token_for_token(
    tiny_model: CogLM, known_after_prefix: bool
) -> None:
    tokens, pos, mask, bias = _stage1(tiny_model)
    if known_after_prefix:  # completion: known tokens after the prefix are fed, not sampled
        tokens[:, 9] = 7
        tokens[:, 14] = 9
    runs = [_draw(tiny_model, tokens, pos, mask, bias, seed=0, use_cache=c) for c in (True, False)]
    assert torch.equal(runs[0], runs[1])
    out = runs[0]
    assert (out >= 0).all() and (out[:, 6:] < 64).all()
    assert not torch.equal(out[0], out[1])  # rows sample independently
    if known_after_prefix:
        assert (out[:, 9] == 7).all() and (out[:, 14] == 9).all()


def test_progress_bar_counts_every_sampled_position(tiny_model: CogLM, capsys) -> None:
    """The bar ends at n/n (it ended at n-1/n: the loop leaves by `break` after its last token)."""
    tokens, pos, mask, _ = _stage1(tiny_model, batch=1)
    n = tokens.shape[1] - 6  # positions after the 5 text ids and BOI
    generate(tiny_model, tokens, pos, attention_mask=mask, sampler=multinomial_sampler(),
             generator=torch.Generator().manual_seed(0), logits_range=(0, 64), progress=True)  # fmt: skip
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"{n}/{n}" in last, last


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


def _unconditional(model: CogLM) -> Guidance:
    """Guidance whose unconditional sequence is ``[BOI, image]`` (a text-dropout model's)."""
    c = model.config
    n = c.num_image_positions
    return Guidance(
        prefix=torch.tensor([c.boi_id]),
        position_ids=text_image_position_ids(0, c),
        attention_mask=text_image_generation_mask(0, n),
        scale=3.0,
    )


def test_guided_logits_are_u_plus_scale_times_c_minus_u(tiny_model: CogLM) -> None:
    tokens, pos, mask, bias = _stage1(tiny_model, batch=2)
    guidance = _unconditional(tiny_model)
    seen = []

    def record(logits: torch.Tensor, generator) -> torch.Tensor:
        seen.append(logits)
        return multinomial_sampler()(logits, generator)

    out = generate(
        tiny_model,
        tokens,
        pos,
        attention_mask=mask,
        attention_bias=bias,
        sampler=record,
        generator=torch.Generator().manual_seed(1),
        logits_range=(0, 64),
        guidance=guidance,
    )
    # reference: full (uncached) forwards of both finished sequences, guidance in float64
    c = tiny_model(out, pos, attention_mask=mask, attention_bias=bias, logits_range=(0, 64))
    u_tokens = torch.cat([guidance.prefix.expand(2, 1), out[:, 6:]], 1)
    u = tiny_model(
        u_tokens,
        guidance.position_ids,
        attention_mask=guidance.attention_mask,
        logits_range=(0, 64),
    )
    c, u = c.logits[:, 5:-1].double(), u.logits[:, :-1].double()
    torch.testing.assert_close(
        torch.stack(seen, 1).double(), u + 3.0 * (c - u), rtol=1e-4, atol=1e-4
    )
    assert not torch.allclose(c, u, atol=1e-2)  # the prompt matters, so the check can fail


def test_guidance_cached_equals_recompute_and_its_limits(tiny_model: CogLM) -> None:
    tokens, pos, mask, bias = _stage1(tiny_model)
    tokens[:, 9] = 7  # a known token after the prefix reaches the unconditional sequence too

    def run(t, p, m, b, guidance, use_cache=True):
        return _draw(tiny_model, t, p, m, b, seed=5, guidance=guidance, use_cache=use_cache)

    guided = _unconditional(tiny_model)
    a, b = run(tokens, pos, mask, bias, guided), run(tokens, pos, mask, bias, guided, False)
    assert torch.equal(a, b) and (a[:, 9] == 7).all()
    plain = run(tokens, pos, mask, bias, None)
    assert not torch.equal(a, plain)
    # scale 1 is plain sampling; scale 0 samples the unconditional sequence alone
    one = dataclasses.replace(guided, scale=1.0)
    assert torch.equal(run(tokens, pos, mask, bias, one), plain)
    zero = dataclasses.replace(guided, scale=0.0)
    u_tokens = torch.cat([guided.prefix.expand(3, 1), tokens[:, 6:]], 1)
    alone = run(u_tokens, guided.position_ids, guided.attention_mask, None, None)
    assert torch.equal(run(tokens, pos, mask, bias, zero)[:, 6:], alone[:, 1:])


def test_guidance_validation(tiny_model: CogLM) -> None:
    guided = _unconditional(tiny_model)
    with pytest.raises(ValueError, match="scale"):
        dataclasses.replace(guided, scale=-1.0)
    with pytest.raises(ValueError, match="prefix"):
        dataclasses.replace(guided, prefix=torch.tensor([-1]))
    tokens, pos, mask, _ = _stage1(tiny_model)
    with pytest.raises(ValueError, match="position_ids"):
        generate(
            tiny_model,
            tokens[:, :-1],
            pos[:-1],
            attention_mask=mask[:-1, :-1],
            sampler=multinomial_sampler(),
            guidance=guided,
        )
