"""CogLM pretraining strategies (paper §3.2, reference.md §8), one sample at a time.

Each function turns a raw 512-token sample into a `TrainingExample`. "released" variants follow
``pretrain_coglm.py``; "paper" variants follow the text (eq. 1 exactly, patches until a ratio).
Sample layout (§8.1): ``[text_A, <pad>, text_B, <pad>, <pad>..., ?, x_0 ... x_399]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .config import CogLMConfig
from .generation import UNKNOWN
from .infilling import infilling_plan, released_region_cells
from .losses import next_token_labels
from .masks import RegionMask

Variant = Literal["released", "paper"]


@dataclass
class TrainingExample:
    """One training sequence.

    Attributes:
        input_ids: (L,) long.
        position_ids: (L,) long.
        loss_mask: (L,) bool; True where the prediction of the NEXT token counts (eq. 2).
        labels: (L,) long, ``input_ids`` shifted left by one.
        attention_mask: (L, L) bool (True = may attend), or None when ``in_region`` is given.
        in_region: (L,) bool eq.-(1) region flags (structured mask), or None.
    """

    input_ids: Tensor
    position_ids: Tensor
    loss_mask: Tensor
    labels: Tensor
    attention_mask: Tensor | None = None
    in_region: Tensor | None = None

    def dense_mask(self) -> Tensor:
        """(L, L) bool attention mask, built from ``in_region`` if needed."""
        if self.attention_mask is not None:
            return self.attention_mask
        assert self.in_region is not None
        return RegionMask(self.in_region[None]).dense()[0]


def collate(examples: list[TrainingExample]) -> dict[str, object]:
    """Stack examples: ``attention_mask`` is a `RegionMask` when every example is structured,
    else a (B, 1, L, L) bool tensor."""
    batch: dict[str, object] = {
        name: torch.stack([getattr(e, name) for e in examples])
        for name in ("input_ids", "position_ids", "loss_mask", "labels")
    }
    if all(e.in_region is not None for e in examples):
        batch["attention_mask"] = RegionMask(torch.stack([e.in_region for e in examples]))  # type: ignore[misc]
    else:
        batch["attention_mask"] = torch.stack([e.dense_mask() for e in examples])[:, None]
    return batch


def split_languages(tokens: Tensor, config: CogLMConfig) -> list[tuple[int, int]]:
    """Text spans ``[(start, end), ...]`` of a text-image sample, found from the pad ids (§8.1)."""
    text_area = tokens[: -config.num_image_positions]
    pads = (text_area == config.pad_id).nonzero().flatten().tolist()
    if not pads:
        raise ValueError("a text-image sample needs at least one pad separator")
    if len(pads) == 1 or pads[1] - pads[0] == 1:
        return [(0, pads[0])]
    return [(0, pads[0]), (pads[0] + 1, pads[1])]


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(high, (1,), generator=generator))


def _finish(ids: Tensor, pos: Tensor, loss: Tensor, **mask: Tensor) -> TrainingExample:
    return TrainingExample(ids, pos, loss, next_token_labels(ids), **mask)


def text_image_generation_example(
    tokens: Tensor,
    config: CogLMConfig,
    generator: torch.Generator | None = None,
    *,
    variant: Variant = "released",
    drop_text: bool = False,
) -> TrainingExample:
    """Text-to-image GPT (§8.2): all image tokens are the mask region; text is bidirectional.

    With two languages one is chosen at random. ``released`` keeps the 512-slot layout (the
    other text and the pads are invisible); ``paper`` builds ``[text, BOI, image, pads]`` with an
    eq.-(1) `RegionMask` (trailing pads are a final region nobody attends to).

    ``drop_text`` hides the text (an empty caption: the image is generated from BOI alone), the
    unconditional model that classifier-free guidance contrasts with the prompted one.
    """
    n_img = config.num_image_positions
    spans = split_languages(tokens, config)
    start, end = spans[_randint(len(spans), generator)] if len(spans) > 1 else spans[0]
    if drop_text:
        end = start
    image = tokens[-n_img:]
    img_pos = torch.arange(n_img) + config.image_position_offset
    boi = torch.tensor([config.boi_id])
    if variant == "released":
        ids = tokens.clone().long()
        ids[-n_img - 1] = config.boi_id
        length = ids.shape[0]
        pos = torch.zeros(length, dtype=torch.long)
        pos[start:end] = torch.arange(end - start)
        pos[-n_img - 1] = config.boi_position
        pos[-n_img:] = img_pos
        mask = torch.zeros(length, length, dtype=torch.bool)
        mask[:, start:end] = True
        mask[-n_img - 1 :, -n_img - 1 :] = torch.ones(n_img + 1, n_img + 1, dtype=torch.bool).tril()
        loss = torch.zeros(length, dtype=torch.bool)
        loss[-n_img - 1 : -1] = True
        return _finish(ids, pos, loss, attention_mask=mask)
    text = tokens[start:end].long()
    n_pad = tokens.shape[0] - text.shape[0] - 1 - n_img
    ids = torch.cat([text, boi, image.long(), torch.full((n_pad,), config.pad_id)])
    pos = torch.cat(
        [
            torch.arange(text.shape[0]),
            torch.tensor([config.boi_position]),
            img_pos,
            torch.zeros(n_pad, dtype=torch.long),
        ]
    )
    in_region = torch.zeros(ids.shape[0], dtype=torch.bool)
    in_region[text.shape[0] :] = True
    loss = torch.zeros_like(in_region)
    loss[text.shape[0] : text.shape[0] + n_img] = True  # BOI .. x_398 predict x_0 .. x_399
    return _finish(ids, pos, loss, in_region=in_region)


def _patch_cells(config: CogLMConfig, corners: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
    """(grid², ) bool masked cells and (grid², ) bool loss cells (first P-1 columns of each row)."""
    g, p = config.image_grid_size, config.patch_size
    masked = torch.zeros(g, g, dtype=torch.bool)
    loss = torch.zeros(g, g, dtype=torch.bool)
    for y, x in corners:
        masked[y : y + p, x : x + p] = True
        loss[y : y + p, x : x + p - 1] = True
    return masked.flatten(), loss.flatten()


def sample_patch_corners(
    config: CogLMConfig,
    generator: torch.Generator | None = None,
    *,
    variant: Variant = "released",
    mask_ratio: float = 0.75,
) -> list[tuple[int, int]]:
    """Top-left corners of the masked patches.

    ``released``: ``int(0.8·grid²/P²)`` distinct corners from ``[0, grid−P)²`` (≈52% masked, the
    last row/column never masked). ``paper``: random patches from ``[0, grid−P]²`` until at least
    ``mask_ratio`` of the grid is masked.
    """
    g, p = config.image_grid_size, config.patch_size
    if variant == "released":
        side = g - p
        n = int(0.8 * g * g / (p * p))
        cells = torch.randperm(side * side, generator=generator)[:n].tolist()
        return [(c // side, c % side) for c in cells]
    if not 0 < mask_ratio <= 1:
        raise ValueError(f"mask_ratio={mask_ratio} must be in (0, 1]")
    side = g - p + 1
    masked = torch.zeros(g, g, dtype=torch.bool)
    corners: list[tuple[int, int]] = []
    while masked.float().mean() < mask_ratio:
        c = _randint(side * side, generator)
        y, x = c // side, c % side
        corners.append((y, x))
        masked[y : y + p, x : x + p] = True
    return corners


def image_text_understanding_example(
    tokens: Tensor,
    config: CogLMConfig,
    generator: torch.Generator | None = None,
    *,
    variant: Variant = "released",
    mask_ratio: float = 0.75,
    caption_end: bool = False,
) -> TrainingExample:
    """Masked 4×4 patches plus captioning with BOE/BOC separators (§8.3, paper §3.2).

    ``released``: the text moves right by one slot, each language becomes its own causal segment
    with a BOE/BOC start token (segments do not see each other), fixed 20 patches. ``paper``:
    ``[image, BOE|BOC, one language, pads]`` with eq. (1) over the patches and the caption, patches
    until ``mask_ratio``; loss on every region token whose successor is in the same region.

    ``caption_end`` (``paper`` only; not in the release): the last caption token also learns to
    predict the pad after it, so that a sampled caption can end where training captions end
    (`generate` with ``stop_ids=[pad_id]``). Without it nothing follows a caption and captions
    run on until their length limit.
    """
    if caption_end and variant != "paper":
        raise ValueError("caption_end needs the 'paper' variant (the released layout has no end)")
    n_img = config.num_image_positions
    image = tokens[-n_img:].long()
    spans = split_languages(tokens, config)
    masked, loss_cells = _patch_cells(
        config, sample_patch_corners(config, generator, variant=variant, mask_ratio=mask_ratio)
    )
    zh = config.chinese_id_range[0]
    if variant == "released":
        length = tokens.shape[0]
        ids = tokens.clone().long()
        ids[1:-n_img] = tokens[: -n_img - 1]
        pos = torch.zeros(length, dtype=torch.long)
        pos[-n_img:] = torch.arange(n_img) + config.image_position_offset
        mask = torch.zeros(length, length, dtype=torch.bool)
        loss = torch.zeros(length, dtype=torch.bool)
        for start, end in spans:
            lo, hi = start + 1, end + 1  # after the shift
            ids[lo - 1] = config.boe_id if bool((ids[lo:hi] < zh).all()) else config.boc_id
            pos[lo - 1 : hi] = torch.arange(hi - lo + 1)
            mask[lo - 1 : hi, lo - 1 : hi] = torch.ones(
                hi - lo + 1, hi - lo + 1, dtype=torch.bool
            ).tril()
            mask[lo - 1 : hi, -n_img:] = True
            loss[lo - 1 : hi - 1] = True
        block = torch.ones(n_img, n_img, dtype=torch.bool).tril()
        block[~masked] = False
        block[:, ~masked] = True
        mask[-n_img:, -n_img:] = block
        loss[-n_img:] = loss_cells
        return _finish(ids, pos, loss, attention_mask=mask)
    start, end = spans[_randint(len(spans), generator)] if len(spans) > 1 else spans[0]
    text = tokens[start:end].long()
    sep = config.boe_id if bool((text < zh).all()) else config.boc_id
    n_pad = tokens.shape[0] - n_img - 1 - text.shape[0]
    ids = torch.cat([image, torch.tensor([sep]), text, torch.full((n_pad,), config.pad_id)])
    pos = torch.cat(
        [
            torch.arange(n_img) + config.image_position_offset,
            torch.arange(text.shape[0] + 1),
            torch.zeros(n_pad, dtype=torch.long),
        ]
    )
    in_region = torch.cat([masked, torch.ones(ids.shape[0] - n_img, dtype=torch.bool)])
    caption = torch.zeros(ids.shape[0], dtype=torch.bool)
    caption[n_img : n_img + 1 + text.shape[0]] = True
    loss = torch.zeros_like(in_region)
    loss[:-1] = (in_region[:-1] & in_region[1:]) & ~(caption[:-1] ^ caption[1:])
    loss[n_img + text.shape[0] :] = False  # last caption token and the pads predict nothing
    if caption_end and n_pad > 0:
        loss[n_img + text.shape[0]] = True  # ... except the end: the pad after the caption
    return _finish(ids, pos, loss, in_region=in_region)


def text_only_example(
    tokens: Tensor,
    config: CogLMConfig,
    generator: torch.Generator | None = None,
    *,
    span_ratio: float = 0.15,
    mean_span: float = 3.0,
) -> TrainingExample:
    """GLM-style span infilling on text (§8.4), as eq.-(1) regions.

    Span lengths ℓ ~ max(Poisson(3), 1) are drawn until their sum exceeds ``span_ratio``·L; the
    last draw is dropped. Span i at ``s`` is the region ``[s, s+ℓ]`` (``s`` is the moved-in context
    token), with loss on ``s .. s+ℓ-1``. The tail after the last span is a region without loss.
    """
    length = tokens.shape[0]
    lengths: list[int] = []
    total = 0
    while total <= span_ratio * length:
        draw = max(int(torch.poisson(torch.tensor([mean_span]), generator=generator)), 1)
        lengths.append(draw)
        total += draw
    lengths = lengths[:-1] or [1]
    free = length - sum(n + 1 for n in lengths)
    if free < 0:
        raise ValueError(f"sample of {length} tokens is too short for spans {lengths}")
    gaps = sorted(torch.randint(free + 1, (len(lengths),), generator=generator).tolist())
    in_region = torch.zeros(length, dtype=torch.bool)
    loss = torch.zeros(length, dtype=torch.bool)
    offset = 0
    for gap, n in zip(gaps, lengths, strict=True):
        s = gap + offset
        in_region[s : s + n + 1] = True
        loss[s : s + n] = True
        offset += n + 1
    in_region[s + n + 1 :] = True  # the causal tail
    ids = tokens.clone().long()
    return _finish(ids, torch.arange(length), loss, in_region=in_region)


def prompted_infilling_example(
    tokens: Tensor,
    region: Tensor,
    config: CogLMConfig,
    generator: torch.Generator | None = None,
) -> TrainingExample:
    """Text-guided infilling (not in the release or the paper): fill ``region``'s cells from the
    caption and the cells around them, in the layout `infill` samples with (``per_region=False``).

    The release trains infilling only inside the caption task, where the masked patches come
    before the caption and never see it; `infill` then conditions on a prompt the model never
    learnt to follow there. Here the sample's caption (one language, chosen at random) comes
    first and the region's cells are its targets: with composite samples (another concept's
    picture pasted into the box, the caption naming it) the model learns to draw the prompt in
    the box. Layout (`infilling_plan` with the released `released_region_cells`), padded with
    ``pad_id`` to the sample length: ``[text, BOI, BOI, context cells, region cells, pads]``; the
    first BOI is the one a prompt template ends with (the pipeline appends it too).

    Args:
        tokens: (sequence_length,) raw text-image sample (§8.1 layout).
        region: (num_image_positions,) bool, the cells to fill (True) in raster order.
        config: The model config.
        generator: Random source (the language).

    Returns:
        A `TrainingExample` with a dense ``attention_mask``; the loss counts the predictions of
        the region's cells (not of the known cells moved into the region list).

    Raises:
        ValueError: a region with no cell or of the wrong size, or a caption too long to fit.
    """
    n_img = config.num_image_positions
    region = region.bool()
    if region.shape != (n_img,) or not bool(region.any()):
        raise ValueError(f"region must be ({n_img},) bool with at least one True cell")
    spans = split_languages(tokens, config)
    start, end = spans[_randint(len(spans), generator)] if len(spans) > 1 else spans[0]
    length = tokens.shape[0]
    text = tokens[start:end].long()
    if text.numel() + 2 + n_img > length:
        raise ValueError(f"a caption of {text.numel()} tokens does not fit a {length}-token sample")
    prefix = torch.cat([text, torch.tensor([config.boi_id])])
    image = tokens[-n_img:].long()[None]  # (1, N)
    unknown = torch.where(region, torch.full_like(image, UNKNOWN), image)
    plan = infilling_plan(prefix, unknown, released_region_cells(unknown, config), config)
    used = plan.tokens.shape[1]
    ids = torch.full((length,), config.pad_id, dtype=torch.long)
    ids[: prefix.numel() + 1] = plan.tokens[0, : prefix.numel() + 1]
    ids[prefix.numel() + 1 : used] = image[0, plan.cells]
    pos = torch.zeros(length, dtype=torch.long)
    pos[:used] = plan.position_ids
    mask = torch.ones(length, length, dtype=torch.bool).tril()  # pads: attend back, unseen
    mask[:used, :used] = plan.attention_mask
    target = torch.zeros(length, dtype=torch.bool)
    target[:used] = plan.tokens[0] == UNKNOWN  # the cells to fill, where the sequence holds them
    loss = torch.zeros(length, dtype=torch.bool)
    loss[:-1] = target[1:]  # position i predicts token i + 1
    return _finish(ids, pos, loss, attention_mask=mask)


def pretraining_example(
    tokens: Tensor,
    config: CogLMConfig,
    generator: torch.Generator | None = None,
    *,
    variant: Variant = "released",
    caption_ratio: float = 0.3,
    mask_ratio: float = 0.75,
    text_dropout: float = 0.0,
    caption_end: bool = False,
) -> TrainingExample:
    """Pick the strategy per sample as the release does (§8.1): text-image samples (with a pad)
    do captioning+patches with probability ``caption_ratio``, text-to-image GPT otherwise;
    samples without a pad whose first token is text do the text-only task.

    ``text_dropout``: probability that a text-to-image sample loses its text (not in the release;
    it trains the unconditional model of classifier-free guidance). At 0 no extra random number
    is drawn, so the strategies of a run without it are unchanged. ``caption_end``: see
    `image_text_understanding_example`."""
    if tokens.dim() != 1 or tokens.shape[0] != config.sequence_length:
        raise ValueError(f"a sample must be ({config.sequence_length},), got {tuple(tokens.shape)}")
    if bool((tokens[: -config.num_image_positions] == config.pad_id).any()):
        if float(torch.rand((), generator=generator)) < caption_ratio:
            return image_text_understanding_example(
                tokens,
                config,
                generator,
                variant=variant,
                mask_ratio=mask_ratio,
                caption_end=caption_end,
            )
        drop = text_dropout > 0 and float(torch.rand((), generator=generator)) < text_dropout
        return text_image_generation_example(
            tokens, config, generator, variant=variant, drop_text=drop
        )
    if int(tokens[0]) >= config.num_image_tokens:
        return text_only_example(tokens, config, generator)
    raise ValueError("pure image samples (no pad, first token an image id) are not supported")
