"""Seconds per training step of every recipe at the demo sizes (synthetic tokens, random weights).

    python packages/cogview2/bench/bench_training.py [--config configs/emoji-demo.toml]
        [--steps 2] [--device cpu] [--autocast bfloat16]

Used to size the step counts of ``configs/emoji-demo.toml`` to the CPU-minute budget. Prints
one markdown table row per stage: seconds per step, per sample, and the minutes the config's
step count would take.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from coglm_core import CogLM, collate, pretraining_example
from coglm_core.training import train_step
from cogview2.models import DirectSuperResolution, DSRConfig, IterativeSuperResolution, ITERSRConfig
from cogview2.training import load_training_config
from cogview2.training.pretrain import coglm_config
from cogview2.training.super_resolution import SRLoss
from icetk import DEFAULT_SPECIAL_TOKENS, HVQVAE, VocabularyLayout, VQVAEConfig

HERE = Path(__file__).resolve().parents[1]


def timed(fn, steps: int, device: torch.device, amp: torch.dtype | None) -> float:
    def step() -> None:
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            fn()

    step()  # warm-up
    tick = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - tick) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", default=str(HERE / "configs" / "emoji-demo.toml"))
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--autocast", choices=("", "bfloat16", "float16"), default="")
    args = p.parse_args()
    cfg = load_training_config(args.config)
    dev = torch.device(args.device)
    amp = getattr(torch, args.autocast) if args.autocast else None
    g = torch.Generator().manual_seed(0)
    sizes = {"common": 300, "english": 1700, "chinese": 1900, "rare": 100}
    layout = VocabularyLayout.from_class_sizes(
        cfg.vqvae.num_codes,
        sizes,
        pad_piece_id=3,
        unk_piece_id=0,
        special_tokens=DEFAULT_SPECIAL_TOKENS,
    )
    rows = []

    vq = HVQVAE(getattr(VQVAEConfig, cfg.vqvae.preset)(num_codes=cfg.vqvae.num_codes)).to(dev)
    opt = torch.optim.Adam(vq.parameters(), 1e-4)
    x = torch.rand(cfg.vqvae.batch_size, 3, cfg.vqvae.crop, cfg.vqvae.crop, device=dev)

    def vq_step() -> None:
        recon, _, commit, _ = vq(x * 2 - 1, vq.config.level_of(8))
        loss = F.mse_loss(recon, x * 2 - 1) + 0.25 * commit
        opt.zero_grad()
        loss.backward()
        opt.step()

    rows.append(
        ("vqvae", timed(vq_step, args.steps, dev, amp), cfg.vqvae.batch_size, cfg.vqvae.steps)
    )

    mc = coglm_config(cfg, layout)
    model = CogLM(mc).to(dev)
    copt = torch.optim.AdamW(model.parameters(), 1e-4)
    n_img, slots = mc.num_image_positions, cfg.tokenize.text_slots
    text = torch.randint(
        layout.text_offset + 300, layout.text_offset + 2000, (slots + 1,), generator=g
    )
    text[12:] = mc.pad_id
    samples = [
        torch.cat([text, torch.randint(0, mc.num_image_tokens, (n_img,), generator=g)])
        for _ in range(cfg.coglm.batch_size)
    ]
    batch = collate([pretraining_example(s, mc, g, variant=cfg.coglm.variant) for s in samples])
    rows.append(
        (
            "coglm",
            timed(lambda: train_step(model, batch, copt, mc), args.steps, dev, amp),
            cfg.coglm.batch_size,
            cfg.coglm.steps,
        )
    )

    low_grid, high_grid = cfg.data.low_size // 8, cfg.data.high_size // 8
    for kind, rc in (("dsr", cfg.dsr), ("itersr", cfg.itersr)):
        base = CogLM(mc).to(dev)
        if kind == "dsr":
            base.requires_grad_(False)
            sr = DirectSuperResolution(
                base, DSRConfig(text_slots=rc.text_slots, low_grid=low_grid, high_grid=high_grid)
            )
            loss_mod = SRLoss(sr)
        else:
            sr = IterativeSuperResolution(
                base, ITERSRConfig(text_slots=rc.text_slots, high_grid=high_grid)
            )
            loss_mod = SRLoss(sr, cfg.itersr.mask_ratios)
        sopt = torch.optim.AdamW([q for q in sr.parameters() if q.requires_grad], 1e-4)
        b = rc.batch_size
        texts = [text[:10].tolist()] * b
        low = torch.randint(0, mc.num_image_tokens, (b, low_grid**2), generator=g)
        high = torch.randint(0, mc.num_image_tokens, (b, high_grid**2), generator=g)

        def sr_step(loss_mod=loss_mod, sopt=sopt, low=low, high=high, texts=texts, b=b) -> None:
            gens = [torch.Generator().manual_seed(i) for i in range(b)]
            total, count = loss_mod(texts, low, high, gens)
            sopt.zero_grad()
            (total / count).backward()
            sopt.step()

        rows.append((kind, timed(sr_step, args.steps, dev, amp), b, rc.steps))

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, "
        f"autocast {args.autocast or 'off'}"
    )
    print("| stage | s/step | s/sample | batch | config steps | minutes for config |")
    print("|---|---|---|---|---|---|")
    for name, sec, bs, steps in rows:
        print(f"| {name} | {sec:.2f} | {sec / bs:.3f} | {bs} | {steps} | {sec * steps / 60:.1f} |")


if __name__ == "__main__":
    main()
