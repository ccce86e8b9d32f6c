"""Optional perceptual loss on VGG16 features, from a user-supplied weights file (no download)."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from icetk.checkpoint import require_file

#: torchvision VGG16 ``features`` layout: conv widths, "M" = max-pool.
VGG16_LAYOUT: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
)
#: Indices in ``features`` after whose ReLU features are compared (relu1_2 ... relu4_3).
VGG16_TAPS: tuple[int, ...] = (3, 8, 15, 22)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            cin = int(item)
    return nn.Sequential(*layers)


class PerceptualLoss(nn.Module):
    """LPIPS-style distance (unit-normalised VGG16 features, equal layer weights), frozen.

    Load with ``PerceptualLoss.from_file(path)``: a torchvision ``vgg16`` state dict (``.pt``,
    loaded with ``weights_only=True``, or ``.safetensors``); only ``features.*`` keys up to
    conv4_3 are used.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = _vgg_features()
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> PerceptualLoss:
        """Load VGG16 weights; ValueError naming the file if keys are missing."""
        p = require_file(path, "perceptual-loss weights (VGG16 state dict)")
        try:
            if p.suffix == ".safetensors":
                from safetensors.torch import load_file

                sd = load_file(p)
            else:
                sd = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"cannot read {p.resolve()}: {err}") from err
        sd = {k: v for k, v in sd.items() if k.startswith("features.")}
        model = cls()
        need = set(model.state_dict())
        missing = sorted(need - set(sd))
        if missing:
            raise ValueError(f"{p.resolve()}: not a VGG16 state dict, missing {missing[:6]}")
        model.load_state_dict({k: sd[k] for k in need})
        return model.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: (B, 3, H, W) in [0, 1] → scalar distance (0 iff the features agree)."""
        h = (torch.cat([x, y]) - self.mean) / self.std
        loss = h.new_zeros(())
        for i, layer in enumerate(self.features[: VGG16_TAPS[-1] + 1]):
            h = layer(h)
            if i in VGG16_TAPS:
                a, b = F.normalize(h, dim=1, eps=1e-10).chunk(2)
                loss = loss + (a - b).pow(2).sum(1).mean()
        return loss
