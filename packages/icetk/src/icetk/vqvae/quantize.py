"""EMA vector quantizer (official names: ``proj``, ``embed``, ``cluster_size``, ``embed_avg``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Rows of latents compared against the codebook at once (bounds the distance matrix's memory).
DISTANCE_CHUNK_ROWS = 2048


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest code (squared L2, first index on ties) for each row of ``z``.

    Args:
        z: (N, D) latents.
        codebook: (K, D) codes.

    Returns:
        (N,) int64 ids.
    """
    code_sq = codebook.pow(2).sum(1)  # (K,)
    out = []
    for chunk in z.split(DISTANCE_CHUNK_ROWS):
        # (n, K) squared distances up to the per-row constant |z|^2
        dist = torch.addmm(code_sq, chunk, codebook.t(), beta=1.0, alpha=-2.0)
        out.append(dist.argmin(dim=1))
    return torch.cat(out) if out else z.new_zeros(0, dtype=torch.long)


class VectorQuantizeEMA(nn.Module):
    """1×1 ``proj`` then nearest-code lookup in one codebook shared by all levels.

    The codebook ``embed.weight`` (K, D) is updated by exponential moving averages of the
    assigned latents (``cluster_size``, ``embed_avg``) in training mode, not by gradients.
    The quantizer always runs in float32, outside autocast.
    """

    def __init__(self, dim: int, num_codes: int, decay: float = 0.99, eps: float = 1e-5) -> None:
        super().__init__()
        self.decay, self.eps = decay, eps
        self.proj = nn.Conv2d(dim, dim, 1)
        self.embed = nn.Embedding(num_codes, dim)
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embed_avg", self.embed.weight.detach().clone())

    @property
    def codebook(self) -> torch.Tensor:
        """(num_codes, dim) code vectors."""
        return self.embed.weight

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D, h, w) latent → (B, h, w, D) projected latent, in float32 whatever the model dtype."""
        with torch.autocast(x.device.type, enabled=False):
            weight, bias = self.proj.weight.float(), self.proj.bias.float()
            return F.conv2d(x.float(), weight, bias).permute(0, 2, 3, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, D, h, w) latent → (B, h, w) int64 code ids."""
        z = self.project(x)  # (B, h, w, D)
        ids = nearest_code(z.reshape(-1, z.shape[-1]), self.codebook.float())
        return ids.view(z.shape[:-1])

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (B, h, w) → (B, D, h, w) code vectors, channels first."""
        return F.embedding(ids, self.codebook).permute(0, 3, 1, 2)

    @torch.no_grad()
    def init_codebook(self, z: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent init: set every code to a random row of ``z`` (N, D) (with replacement)."""
        idx = torch.randint(
            0, z.shape[0], (self.codebook.shape[0],), generator=generator, device="cpu"
        )
        codes = z[idx.to(z.device)].float()
        self.embed.weight.copy_(codes)
        self.embed_avg.copy_(codes)
        self.cluster_size.fill_(1.0)

    @torch.no_grad()
    def restart_codes(
        self, dead: torch.Tensor, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> int:
        """Reset the codes where ``dead`` (K,) is True to random rows of ``z`` (N, D); returns the count."""
        n = int(dead.sum())
        if n == 0 or z.shape[0] == 0:
            return 0
        idx = torch.randint(0, z.shape[0], (n,), generator=generator, device="cpu").to(z.device)
        codes = z[idx].float()
        self.embed.weight[dead] = codes
        self.embed_avg[dead] = codes
        self.cluster_size[dead] = 1.0
        return n

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantize with a straight-through gradient; EMA-update the codebook when training.

        Args:
            x: (B, D, h, w) latent.

        Returns:
            quantized (B, D, h, w) float32, ids (B, h, w), commitment loss ``mse(z, sg(q))``
            (scalar), and the projected latents (B·h·w, D) (detached, for code restarts).
        """
        with torch.autocast(x.device.type, enabled=False):
            z = self.project(x)  # (B, h, w, D)
            flat = z.reshape(-1, z.shape[-1])  # (N, D)
            ids = nearest_code(flat.detach(), self.codebook.detach().float())
            if self.training:
                self._ema_update(flat.detach(), ids)
            q = F.embedding(ids, self.codebook.detach()).view_as(z)
            commit = F.mse_loss(z, q)
            q = z + (q - z).detach()  # straight-through
            return q.permute(0, 3, 1, 2), ids.view(z.shape[:-1]), commit, flat.detach()

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, ids: torch.Tensor) -> None:
        k = self.codebook.shape[0]
        counts = torch.bincount(ids, minlength=k).to(flat.dtype)  # (K,)
        sums = torch.zeros_like(self.embed_avg).index_add_(0, ids, flat)  # (K, D)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        size = (self.cluster_size + self.eps) / (total + k * self.eps) * total
        self.embed.weight.copy_(self.embed_avg / size.unsqueeze(1))
