"""A small CNN that predicts an emoji's Unicode group and subgroup from its picture.

Trained on the real training renders; its accuracy on generated images (against the prompt's
group) and its penultimate features (for the Fréchet distance) measure the generator.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data import EmojiDataset

__all__ = ["ClassifierConfig", "EmojiClassifier", "load_images", "predict", "train_classifier"]


@dataclass(frozen=True)
class ClassifierConfig:
    """Size and training of the classifier.

    Attributes:
        image_size: Input side (images are resized to it).
        width: Channels of the first conv stage (doubled at each of the 3 later stages).
        steps: Adam steps.
        batch_size: Images per step.
        lr: Adam learning rate.
        max_images: Train on at most this many renders (evenly spaced); None: all.
        seed: Seeds the init and the batches.
    """

    image_size: int = 64
    width: int = 16
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    max_images: int | None = 4000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("image_size", "width", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class EmojiClassifier(nn.Module):
    """Four conv stages (stride 2, BatchNorm, ReLU), global average pooling, two linear heads.

    Args:
        num_groups: Group classes.
        num_subgroups: Subgroup classes.
        width: Channels of the first stage.
    """

    def __init__(self, num_groups: int, num_subgroups: int, width: int = 16) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for cin, cout in itertools.pairwise(chans):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.group = nn.Linear(chans[-1], num_groups)
        self.subgroup = nn.Linear(chans[-1], num_subgroups)

    @property
    def feature_dim(self) -> int:
        """Width of `features`."""
        return self.group.in_features

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, S, S) float in [0, 1] → (B, feature_dim) pooled features."""
        return self.body(x * 2 - 1).mean((2, 3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 3, S, S) in [0, 1] → (group logits (B, G), subgroup logits (B, SG))."""
        h = self.features(x)
        return self.group(h), self.subgroup(h)


def to_uint8(images: Sequence[Image.Image], size: int) -> Tensor:
    """PIL images → (N, 3, size, size) uint8 (bicubic, antialiased resize)."""
    arrays = [
        np.asarray(im.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.uint8)
        for im in images
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_images(data: EmojiDataset, size: int, indices: Sequence[int] | None = None) -> Tensor:
    """Renders of ``data`` (or of ``indices``) resized to ``size``: (N, 3, size, size) uint8."""
    ids = range(len(data)) if indices is None else indices
    return to_uint8([Image.open(io.BytesIO(data.image_bytes(i))) for i in ids], size)


def evenly_spaced(n: int, k: int | None) -> list[int]:
    """``k`` indices spread over ``range(n)`` (all when ``k`` is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return [int(i) for i in np.linspace(0, n - 1, k).round()]


def train_classifier(
    images: Tensor,
    groups: Tensor,
    subgroups: Tensor,
    num_groups: int,
    num_subgroups: int,
    cfg: ClassifierConfig,
    *,
    progress: bool = False,
) -> EmojiClassifier:
    """Train on uint8 images (N, 3, S, S) with group/subgroup labels (N,) long; eval mode out."""
    if images.shape[0] == 0 or len({images.shape[0], groups.shape[0], subgroups.shape[0]}) != 1:
        raise ValueError("need as many labels as images, and at least one image")
    torch.manual_seed(cfg.seed)
    model = EmojiClassifier(num_groups, num_subgroups, cfg.width)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for _ in tqdm(range(cfg.steps), disable=not progress, desc="classifier"):
        idx = torch.randint(0, images.shape[0], (cfg.batch_size,), generator=gen)
        x = images[idx].float() / 255.0
        g, s = model(x)
        loss = F.cross_entropy(g, groups[idx]) + F.cross_entropy(s, subgroups[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict(model: EmojiClassifier, images: Tensor, batch: int = 256) -> dict[str, Tensor]:
    """``{"group": (N,), "subgroup": (N,), "features": (N, F)}`` for uint8 (N, 3, S, S) images."""
    outs: dict[str, list[Tensor]] = {"group": [], "subgroup": [], "features": []}
    for s in range(0, images.shape[0], batch):
        x = images[s : s + batch].float() / 255.0
        h = model.features(x)
        outs["group"].append(model.group(h).argmax(-1))
        outs["subgroup"].append(model.subgroup(h).argmax(-1))
        outs["features"].append(h)
    return {k: torch.cat(v) for k, v in outs.items()}
