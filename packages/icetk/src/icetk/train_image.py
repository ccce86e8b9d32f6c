"""Train the VQ-VAE: EMA codebook, data-dependent init, dead-code restarts, resumable."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from icetk.checkpoint import atomic_write
from icetk.perceptual import PerceptualLoss
from icetk.preprocess import ImageNormalization
from icetk.vqvae import HVQVAE, VQVAEConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageTrainConfig:
    """Options of ``train_vqvae``.

    Attributes:
        compressions: Levels trained each step (their losses are summed); default 8× only.
        steps: Total optimizer steps (a resumed run continues up to this).
        batch_size: Images per step.
        lr: Adam learning rate.
        commitment: Weight of ``mse(z, sg(q))``.
        ema_decay: Codebook EMA decay.
        usage_decay: Decay of the per-code usage EMA used to find dead codes.
        dead_threshold: Codes whose usage EMA (assignments per step) falls below this are restarted.
        restart_every: Steps between dead-code restarts.
        log_every: Steps between metric logs.
        checkpoint_every: Steps between checkpoints (one is always written at the end).
        perceptual_weight: Weight of the perceptual loss (needs ``perceptual_weights``).
        perceptual_weights: Path of a VGG16 state dict, or None for no perceptual loss.
        bf16: Run encoder/decoder under CPU/GPU bf16 autocast (the quantizer stays fp32).
        hflip: Random horizontal flips.
        seed: Seed of the training generator (data order, flips, restarts).
    """

    compressions: tuple[int, ...] = (8,)
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    commitment: float = 0.25
    ema_decay: float = 0.99
    usage_decay: float = 0.9
    dead_threshold: float = 0.03
    restart_every: int = 25
    log_every: int = 50
    checkpoint_every: int = 200
    perceptual_weight: float = 0.0
    perceptual_weights: str | None = None
    bf16: bool = False
    hflip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "compressions", tuple(self.compressions))
        for name in ("steps", "batch_size", "restart_every", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.perceptual_weight > 0 and not self.perceptual_weights:
            raise ValueError(
                "perceptual_weight > 0 needs perceptual_weights=<path to VGG16 weights>"
            )


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1] (``y`` clamped to [0, 1])."""
    mse = F.mse_loss(y.clamp(0, 1).float(), x.float()).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _save(
    path: Path,
    model: HVQVAE,
    opt: torch.optim.Optimizer,
    step: int,
    usage: torch.Tensor,
    gen: torch.Generator,
    cfg: ImageTrainConfig,
) -> None:
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "step": step,
        "usage": usage.cpu(),
        "generator": gen.get_state(),
        "vqvae_config": json.dumps(model.config.to_dict()),
        "train_config": json.dumps(asdict(cfg)),
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by ``train_vqvae`` (weights_only, no pickled code)."""
    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"cannot read training checkpoint {p.resolve()}: {err}") from err
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise ValueError(f"{p.resolve()} is not an icetk training checkpoint")
    return state


def train_vqvae(
    model: HVQVAE,
    dataset: torch.utils.data.Dataset,
    config: ImageTrainConfig,
    checkpoint: str | os.PathLike,
    *,
    normalization: ImageNormalization | None = None,
    device: torch.device | str = "cpu",
    log_file: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Train ``model`` in place; resume from ``checkpoint`` if it exists.

    Args:
        model: The VQ-VAE (its config must match the checkpoint's when resuming).
        dataset: Items are float (3, S, S) images in [0, 1].
        config: Training options.
        checkpoint: Path of the resumable checkpoint (written atomically).
        normalization: Image normalisation (official constants by default).
        device: Where to train.
        log_file: Optional JSON-lines metrics log (appended).
        progress: Show a tqdm bar.

    Returns:
        The last logged metrics: step, loss, psnr, usage (fraction of live codes), perplexity.
    """
    norm = normalization or ImageNormalization()
    levels = [model.config.level_of(c) for c in config.compressions]
    ckpt = Path(checkpoint)
    gen = torch.Generator().manual_seed(config.seed)
    model.to(device).train()
    model.quantize.decay = config.ema_decay
    model.quantize.embed.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    num_codes = model.config.num_codes
    usage = torch.ones(num_codes)
    step = 0
    if ckpt.is_file():
        state = load_training_checkpoint(ckpt)
        saved = VQVAEConfig.from_dict(json.loads(state["vqvae_config"]))
        if saved != model.config:
            raise ValueError(f"{ckpt.resolve()} was trained with a different VQVAEConfig: {saved}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, usage = int(state["step"]), state["usage"].float()
        gen.set_state(state["generator"])
        logger.info("resumed %s at step %d", ckpt, step)
    perceptual = None
    if config.perceptual_weight > 0:
        perceptual = PerceptualLoss.from_file(config.perceptual_weights).to(device)
    n = len(dataset)
    if n == 0:
        raise ValueError("the training dataset is empty")
    metrics: dict[str, float] = {}
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="train-image")
    while step < config.steps:
        idx = torch.randint(0, n, (config.batch_size,), generator=gen)
        x = torch.stack([dataset[int(i)] for i in idx])  # (B, 3, S, S) in [0, 1]
        if config.hflip:
            flip = torch.rand(x.shape[0], generator=gen) < 0.5
            x[flip] = x[flip].flip(-1)
        x = x.to(device)
        xn = norm.normalize(x)
        if step == 0:  # data-dependent codebook init from the first batch's latents
            with torch.no_grad():
                z = torch.cat(
                    [
                        model.quantize.project(model.latent(xn, lv)).reshape(
                            -1, model.config.z_channels
                        )
                        for lv in levels
                    ]
                )
            model.quantize.init_codebook(z, gen)
        loss = x.new_zeros(())
        counts = torch.zeros(num_codes)
        flats, recon_last = [], None
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=config.bf16):
            for lv in levels:
                recon, ids, commit, flat = model(xn, lv)
                recon = recon.float()
                loss = loss + F.mse_loss(recon, xn) + config.commitment * commit
                if perceptual is not None:
                    loss = loss + config.perceptual_weight * perceptual(x, norm.denormalize(recon))
                counts += torch.bincount(ids.flatten().cpu(), minlength=num_codes).float()
                flats.append(flat)
                recon_last = recon
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        usage.mul_(config.usage_decay).add_(counts, alpha=1 - config.usage_decay)
        if step % config.restart_every == 0:
            dead = usage < config.dead_threshold
            restarted = model.quantize.restart_codes(dead.to(device), torch.cat(flats), gen)
            usage[dead] = 1.0
            if restarted:
                logger.debug("step %d: restarted %d dead codes", step, restarted)
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            p = counts / counts.sum()
            metrics = {
                "step": step,
                "loss": loss.item(),
                "psnr": psnr(x, norm.denormalize(recon_last.detach())),
                "usage": float((usage >= config.dead_threshold).float().mean()),
                "perplexity": float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum())),
            }
            bar.set_postfix(
                loss=f"{metrics['loss']:.4f}",
                psnr=f"{metrics['psnr']:.1f}",
                usage=f"{metrics['usage']:.2f}",
            )
            logger.info("%s", metrics)
            if log_file is not None:
                with open(log_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps(metrics) + "\n")
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save(ckpt, model, opt, step, usage, gen, config)
    bar.close()
    model.eval()
    return metrics
