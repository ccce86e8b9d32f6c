"""VQ-VAE training: overfitting real emoji images, resuming, atomic checkpoints, perceptual loss."""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from icetk import HVQVAE, ImageTokenizer, VQVAEConfig, atomic_write
from icetk.data import ImageFiles, TensorImages, collect_image_paths, shapes_images
from icetk.perceptual import PerceptualLoss
from icetk.train_image import ImageTrainConfig, load_training_checkpoint, psnr, train_vqvae


def _reconstruction_psnr(model: HVQVAE, images: torch.Tensor) -> float:
    tok = ImageTokenizer(model)
    return psnr(images, tok.decode_image(tok.encode_image(images)))


FIXTURES = Path(__file__).parent / "fixtures"


def _emoji_images() -> torch.Tensor:
    """(4, 3, 32, 32) real emoji artwork in [0, 1] (four art styles; see fixtures/README.md)."""
    paths = sorted(FIXTURES.glob("*.png"))
    assert len(paths) == 4, paths
    arrays = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255 for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _overfit(steps: int, tmp_path) -> tuple[float, float, dict]:
    torch.manual_seed(0)
    images = _emoji_images()
    model = HVQVAE(VQVAEConfig.tiny(num_codes=64))
    before = _reconstruction_psnr(model, images)
    cfg = ImageTrainConfig(steps=steps, batch_size=4, lr=3e-3, hflip=False, restart_every=10,
                           log_every=steps, checkpoint_every=steps)  # fmt: skip
    metrics = train_vqvae(model, TensorImages(images), cfg, tmp_path / "ckpt.pt", progress=False)
    return before, _reconstruction_psnr(model, images), metrics


def test_overfit_reaches_psnr_threshold(tmp_path) -> None:
    """300 steps (~16 s on one core): the tiny VQ-VAE (64 codes, 4×4 tokens per image)
    reconstructs 4 real emoji renders (32 px) at >= 20 dB PSNR (untrained: ~9 dB; measured
    21.7 dB), with the codebook in use."""
    before, after, metrics = _overfit(300, tmp_path)
    assert before < 15.0
    assert after >= 20.0, (before, after)
    assert metrics["usage"] >= 0.5


def test_resume_gives_the_same_model_as_an_uninterrupted_run(tmp_path) -> None:
    images = shapes_images(6, 16, seed=1)
    cfg = ImageTrainConfig(steps=4, batch_size=2, restart_every=2, log_every=1, checkpoint_every=2)
    small = VQVAEConfig.from_dict({**VQVAEConfig.tiny().to_dict(), "num_codes": 16})

    torch.manual_seed(0)
    straight = HVQVAE(small)
    train_vqvae(straight, TensorImages(images), cfg, tmp_path / "a.pt", progress=False)

    torch.manual_seed(0)
    first = HVQVAE(small)
    half = ImageTrainConfig(**{**cfg.__dict__, "steps": 2})
    train_vqvae(first, TensorImages(images), half, tmp_path / "b.pt", progress=False)
    assert load_training_checkpoint(tmp_path / "b.pt")["step"] == 2
    torch.manual_seed(123)  # a fresh process: different init, everything comes from the checkpoint
    resumed = HVQVAE(small)
    log = tmp_path / "log.jsonl"
    metrics = train_vqvae(
        resumed, TensorImages(images), cfg, tmp_path / "b.pt", progress=False, log_file=log
    )
    assert metrics["step"] == 4 and len(log.read_text().splitlines()) == 2
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), k


def test_resume_rejects_a_different_architecture(tmp_path) -> None:
    images = shapes_images(2, 16)
    cfg = ImageTrainConfig(steps=1, batch_size=2)
    train_vqvae(
        HVQVAE(VQVAEConfig.tiny()), TensorImages(images), cfg, tmp_path / "c.pt", progress=False
    )
    with pytest.raises(ValueError, match=r"different VQVAEConfig"):
        train_vqvae(
            HVQVAE(VQVAEConfig.tiny(num_codes=8)),
            TensorImages(images),
            cfg,
            tmp_path / "c.pt",
            progress=False,
        )


def test_atomic_write_keeps_old_file_when_the_writer_fails(tmp_path) -> None:
    target = tmp_path / "ckpt.pt"
    atomic_write(target, lambda tmp: torch.save({"v": torch.ones(3)}, tmp))

    def broken(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert torch.equal(torch.load(target, weights_only=True)["v"], torch.ones(3))
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_process_killed_while_writing_never_leaves_a_truncated_checkpoint(tmp_path) -> None:
    target = tmp_path / "ckpt.pt"
    script = textwrap.dedent(f"""
        import torch
        from icetk import atomic_write
        i = 0
        while True:
            i += 1
            state = {{"step": i, "w": torch.full((1_000_000,), float(i))}}
            atomic_write({str(target)!r}, lambda tmp: torch.save(state, tmp))
    """)
    for delay in (1.5, 2.2):
        proc = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.time() + 60
        while not target.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = torch.load(target, weights_only=True)  # never truncated
        assert torch.all(state["w"] == float(state["step"]))


def test_collect_image_paths_from_folder_and_list_file(tmp_path) -> None:
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    for name in ("b.png", "a.png", "sub/c.png"):
        Image.new("RGBA", (20, 12), (255, 0, 0, 255)).save(tmp_path / "imgs" / name)
    (tmp_path / "imgs" / "notes.md").write_text("x")
    (tmp_path / "list.txt").write_text("# emoji renders\nimgs/a.png\n\nimgs/sub/c.png\n")
    paths = collect_image_paths([tmp_path / "imgs", tmp_path / "list.txt"])
    assert [p.name for p in paths] == ["a.png", "b.png", "c.png", "a.png", "c.png"]
    ds = ImageFiles(paths, 8)
    x = ds[0]
    assert x.shape == (3, 8, 8) and torch.allclose(x[0], torch.ones(8, 8))
    with pytest.raises(FileNotFoundError, match=r"missing"):
        collect_image_paths([tmp_path / "missing"])
    with pytest.raises(ValueError, match=r"no images"):
        collect_image_paths([tmp_path / "imgs" / "sub" / ".."][:0])


def test_perceptual_loss_from_a_weights_file(tmp_path) -> None:
    torch.manual_seed(0)
    vgg = PerceptualLoss()
    torch.save(
        {f"features.{k}": v for k, v in vgg.features.state_dict().items()}, tmp_path / "vgg.pt"
    )
    loss = PerceptualLoss.from_file(tmp_path / "vgg.pt")
    x = torch.rand(2, 3, 32, 32)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(x, x.flip(-1)).item() > 0
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"not a VGG16 state dict"):
        PerceptualLoss.from_file(tmp_path / "bad.pt")
    cfg = ImageTrainConfig(
        steps=1, batch_size=2, perceptual_weight=0.1, perceptual_weights=str(tmp_path / "vgg.pt")
    )
    metrics = train_vqvae(
        HVQVAE(VQVAEConfig.tiny()),
        TensorImages(shapes_images(2, 16)),
        cfg,
        tmp_path / "p.pt",
        progress=False,
    )
    assert metrics["step"] == 1
    with pytest.raises(ValueError, match=r"perceptual_weights"):
        ImageTrainConfig(perceptual_weight=0.1)


def test_bf16_autocast_training_keeps_the_quantizer_in_fp32(tmp_path) -> None:
    torch.manual_seed(0)
    model = HVQVAE(VQVAEConfig.tiny())
    cfg = ImageTrainConfig(steps=2, batch_size=2, bf16=True, log_every=1)
    metrics = train_vqvae(
        model, TensorImages(shapes_images(2, 16)), cfg, tmp_path / "bf.pt", progress=False
    )
    assert metrics["step"] == 2 and math.isfinite(metrics["loss"])
    assert model.quantize.codebook.dtype == torch.float32
