"""Direct and iterative super-resolution models built on `coglm_core.CogLM` (§4, §5).

Each model holds a *reference* to a base `CogLM` (its ``transformer.*`` weights) plus its own
mixins, named as in the SAT checkpoints: ``mixins.extra_position_embedding.position_embeddings``
(a 3600-row table for the hi-res tokens) and, for DSR only, ``mixins.attention_plus``. Several
models may share one base object; `mixin_state_dict` never includes the base.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from coglm_core import atomic_write_text, save_safetensors
from coglm_core.config import CogLMConfig
from coglm_core.pretrained import from_pretrained as load_coglm
from coglm_core.pretrained import save_state_dict
from coglm_core.transformer import CogLM

from ..files import check_safetensors, require_files
from .attention import AttentionPlus, DSRAttention, ITERSRAttention, dsr_level0_mask
from .config import DSRConfig, ITERSRConfig, config_from_json, config_to_json


class ExtraPositionEmbedding(nn.Module):
    """The ``extra_position_embedding`` mixin: one row per hi-res token."""

    def __init__(self, num_positions: int, hidden_size: int, *, skip_init: bool = False) -> None:
        super().__init__()
        # skip_init: no initialisation (on the meta device, where it only costs time)
        weight = torch.empty(num_positions, hidden_size) if skip_init else None
        self.position_embeddings = nn.Embedding(num_positions, hidden_size, _weight=weight)


def _text_batch(text: Tensor, batch: int, slots: int, what: str) -> Tensor:
    if text.dim() == 1:
        text = text[None].expand(batch, -1)
    if text.dim() != 2 or text.shape[0] != batch or text.dtype != torch.long:
        raise ValueError(f"{what} text must be (n,) or ({batch}, n) long, got {tuple(text.shape)}")
    if text.shape[1] > slots:
        raise ValueError(f"{what} text has {text.shape[1]} tokens; at most {slots} fit")
    return text


class _SRBase(nn.Module):
    base: CogLM

    def __init__(self, base: CogLM, num_high: int) -> None:
        super().__init__()
        self.base = base
        h = base.config.hidden_size
        weight = base.transformer.word_embeddings.weight
        # made where the base lives: on the meta device (plans, shapes) nothing is allocated
        meta = weight.device.type == "meta"
        with torch.device(weight.device):
            table = ExtraPositionEmbedding(num_high, h, skip_init=meta)
            self.mixins = nn.ModuleDict({"extra_position_embedding": table})
        if not meta:
            std = base.config.init_std
            nn.init.normal_(table.position_embeddings.weight, 0, std)
        self.mixins.to(weight.dtype)

    @property
    def extra_positions(self) -> Tensor:
        """(num_high, H) extra position table."""
        return self.mixins["extra_position_embedding"].position_embeddings.weight

    def mixin_state_dict(self) -> dict[str, Tensor]:
        """Mixin tensors under their SAT names (``mixins.*``), without the base weights."""
        return {f"mixins.{k}": v for k, v in self.mixins.state_dict().items()}

    def load_mixin_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load ``mixins.*`` tensors (other keys are ignored); missing or misshapen ones raise."""
        own = self.mixins.state_dict()
        sub = {k[len("mixins.") :]: v for k, v in state.items() if k.startswith("mixins.")}
        missing = sorted(set(own) - set(sub))
        if missing:
            raise ValueError(
                f"checkpoint lacks mixin tensors: {['mixins.' + m for m in missing[:5]]}"
            )
        for k, v in own.items():
            if tuple(sub[k].shape) != tuple(v.shape):
                raise ValueError(
                    f"mixins.{k}: shape {tuple(sub[k].shape)}, expected {tuple(v.shape)}"
                )
        self.mixins.load_state_dict({k: sub[k] for k in own}, assign=True)

    def save_pretrained(
        self, folder: str | Path, *, shared_base: CogLM | None = None
    ) -> str | None:
        """Write ``sr_config.json`` + ``mixins.safetensors``, and ``base/`` unless the base is
        ``shared_base`` (the pipeline's CogLM, stored once beside). Returns the manifest's
        ``shares_base`` tag (`SHARED` or None)."""
        return save_sr(self, Path(folder), shared_base)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        base: CogLM | None = None,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
    ) -> DirectSuperResolution | IterativeSuperResolution:
        """Read a `save_pretrained` folder: on ``base`` (the shared CogLM), or on the folder's
        own ``base/`` when ``base`` is None.

        Raises:
            FileNotFoundError: a file is missing (named).
            ValueError: a truncated file, or a folder of the other SR kind.
        """
        shares = SHARED if base is not None else None
        model = load_sr(Path(folder), base, shares, device=device, dtype=dtype)  # type: ignore[arg-type]
        if not isinstance(model, cls):
            raise ValueError(f"{folder} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def _image_rows(self) -> tuple[int, int]:
        return (0, self.base.config.num_image_tokens)


class DirectSuperResolution(_SRBase):
    """DSR: 20×20 tokens + text → logits of all 60×60 tokens in one forward pass (§4).

    Args:
        base: The base transformer (may be shared with the stage-1 model).
        config: Layout.
        backend: localattn backend (None = automatic).
    """

    def __init__(
        self, base: CogLM, config: DSRConfig | None = None, *, backend: str | None = None
    ) -> None:
        config = config or DSRConfig()
        super().__init__(base, config.num_high)
        self.config = config
        self.backend = backend
        bc = base.config
        weight = base.transformer.word_embeddings.weight
        with torch.device(weight.device):  # as the position table: nothing real on meta
            plus = AttentionPlus(bc.num_layers, bc.hidden_size)
        self.mixins["attention_plus"] = plus.to(weight.dtype)
        self.init_attention_plus_from_base()

    @torch.no_grad()
    def init_attention_plus_from_base(self) -> None:
        """Copy each base layer's attention into ``attention_plus`` (the SAT mixin ``reinit``)."""
        plus = self.mixins["attention_plus"]
        for i, layer in enumerate(self.base.transformer.layers):
            plus.query_key_value[i].load_state_dict(layer.attention.query_key_value.state_dict())
            plus.dense[i].load_state_dict(layer.attention.dense.state_dict())

    def forward(self, text: Tensor, low_ids: Tensor) -> Tensor:
        """Logits of every hi-res token.

        Args:
            text: (n,) or (B, n) long text ids without BOI, n <= ``config.max_text_len``.
            low_ids: (B, low_grid²) or (B, low_grid, low_grid) long low-res image ids.

        Returns:
            (B, high_grid², num_image_tokens) float32 logits; row k is hi-res token k (no shift).
        """
        cfg, bc = self.config, self.base.config
        low_ids = low_ids.reshape(low_ids.shape[0], -1)
        batch, device = low_ids.shape[0], low_ids.device
        if low_ids.shape[1] != cfg.low_grid**2:
            raise ValueError(f"low_ids must hold {cfg.low_grid**2} tokens, got {low_ids.shape[1]}")
        text = _text_batch(text.to(device), batch, cfg.max_text_len, "DSR")
        n = text.shape[1]
        n_pad = cfg.text_slots - n
        ids0 = torch.cat([text.new_zeros(batch, n_pad), text, low_ids], dim=1)  # (B, L0)
        pos0 = torch.cat(
            [
                torch.zeros(n_pad, dtype=torch.long, device=device),
                torch.arange(n, device=device),
                bc.image_position_offset + torch.arange(cfg.low_grid**2, device=device),
            ]
        )
        emb0 = self.base.embed(ids0, pos0)  # (B, L0, H)
        boi = self.base.transformer.word_embeddings.weight[bc.boi_id]
        emb1 = (boi + self.extra_positions).expand(batch, -1, -1)  # (B, G², H)
        mask0 = dsr_level0_mask(torch.full((batch,), n_pad, device=device), cfg)
        attn = DSRAttention(cfg, mask0, self.mixins["attention_plus"], self.backend)
        out = self.base(
            None,
            None,
            inputs_embeds=torch.cat([emb0, emb1], 1),
            attention_fn=attn,
            return_logits=False,
        )
        return self.base.logits(out.hidden_states[:, cfg.level0_len :], self._image_rows())


class IterativeSuperResolution(_SRBase):
    """ITERSR: text (first 16 tokens) + 60×60 tokens, some replaced by BOI → logits of every
    hi-res token (BERT-style, no shift) (§5).

    Args:
        base: The base transformer (ITERSR's own fine-tuned weights in the release).
        config: Layout.
        backend: localattn backend (None = automatic).
    """

    def __init__(
        self, base: CogLM, config: ITERSRConfig | None = None, *, backend: str | None = None
    ) -> None:
        config = config or ITERSRConfig()
        super().__init__(base, config.num_high)
        self.config = config
        self.backend = backend

    def forward(self, text: Tensor, high_ids: Tensor) -> Tensor:
        """Logits of every hi-res token.

        Args:
            text: (n,) or (B, n) long text ids, n <= ``config.text_slots`` (truncate first).
            high_ids: (B, G²) or (B, G, G) long hi-res ids; positions to re-sample hold BOI.

        Returns:
            (B, G², num_image_tokens) float32 logits.
        """
        cfg = self.config
        high_ids = high_ids.reshape(high_ids.shape[0], -1)
        batch, device = high_ids.shape[0], high_ids.device
        if high_ids.shape[1] != cfg.num_high:
            raise ValueError(f"high_ids must hold {cfg.num_high} tokens, got {high_ids.shape[1]}")
        text = _text_batch(text.to(device), batch, cfg.text_slots, "ITERSR")
        n = text.shape[1]
        n_pad = cfg.text_slots - n
        ids_t = torch.cat([text.new_zeros(batch, n_pad), text], dim=1)
        pos_t = torch.cat(
            [torch.zeros(n_pad, dtype=torch.long, device=device), torch.arange(n, device=device)]
        )
        emb_t = self.base.embed(ids_t, pos_t)
        emb_i = self.base.transformer.word_embeddings(high_ids) + self.extra_positions
        text_mask = (torch.arange(cfg.text_slots, device=device) >= n_pad).expand(batch, -1)
        attn = ITERSRAttention(cfg, text_mask, self.backend)
        out = self.base(
            None,
            None,
            inputs_embeds=torch.cat([emb_t, emb_i], 1),
            attention_fn=attn,
            return_logits=False,
        )
        return self.base.logits(out.hidden_states[:, cfg.text_slots :], self._image_rows())


@torch.no_grad()
def tile_extra_positions(base: CogLM, table: Tensor, low_grid: int, high_grid: int) -> None:
    """Fill a hi-res position table by tiling the base low-res rows (the SAT mixin ``reinit``).

    Reproduces the release's slice ``[boi_position, boi_position + low²)`` (off by one: it starts
    at BOI's row, reference.md §4.5).
    """
    start = base.config.boi_position
    old = base.transformer.position_embeddings.weight[start : start + low_grid**2]
    reps = high_grid // low_grid
    grid = old.reshape(low_grid, low_grid, -1).repeat(reps, reps, 1)
    table.copy_(grid.reshape(high_grid * high_grid, -1))


def build_sr(
    base: CogLM, config: DSRConfig | ITERSRConfig, *, backend: str | None = None
) -> DirectSuperResolution | IterativeSuperResolution:
    """The super-resolution model of ``config``'s type on ``base``: `DirectSuperResolution` for
    a `DSRConfig`, `IterativeSuperResolution` for an `ITERSRConfig`."""
    if isinstance(config, DSRConfig):
        return DirectSuperResolution(base, config, backend=backend)
    if isinstance(config, ITERSRConfig):
        return IterativeSuperResolution(base, config, backend=backend)
    raise ValueError(f"no super-resolution model for {type(config).__name__}")


# ----------------------------------------------------------------------------- folder format
SR_CONFIG_FILE = "sr_config.json"
MIXINS_FILE = "mixins.safetensors"
SHARED = "coglm"
"""The manifest's ``shares_base`` tag of an SR model whose base is the pipeline's CogLM."""


def save_sr_parts(
    folder: Path,
    config: DSRConfig | ITERSRConfig,
    mixins: Mapping[str, Tensor],
    base: Mapping[str, Tensor] | None,
    base_config: CogLMConfig,
) -> str | None:
    """Write one SR model folder from its parts: ``sr_config.json``, ``mixins.safetensors`` and,
    when ``base`` (a ``transformer.*`` state dict) is given, ``base/``. Returns the share tag
    of the manifest (`SHARED` when the base is CogLM's and not written)."""
    atomic_write_text(folder / SR_CONFIG_FILE, config_to_json(config) + "\n")
    save_safetensors(dict(mixins), folder / MIXINS_FILE)
    if base is None:
        return SHARED
    save_state_dict(base, base_config, folder / "base")
    return None


def save_sr(
    model: DirectSuperResolution | IterativeSuperResolution, folder: Path, coglm: CogLM | None
) -> str | None:
    """Write one SR model; its base only when it is not ``coglm`` (None: always). Returns the
    share tag."""
    base = None if model.base is coglm else model.base.state_dict()
    return save_sr_parts(folder, model.config, model.mixin_state_dict(), base, model.base.config)


def load_sr(
    folder: Path,
    coglm: CogLM,
    shares: str | None,
    *,
    device: torch.device | str,
    dtype: torch.dtype | None,
) -> DirectSuperResolution | IterativeSuperResolution:
    """Inverse of `save_sr`."""
    require_files(
        folder,
        [SR_CONFIG_FILE, MIXINS_FILE]
        + ([] if shares == SHARED else ["base/config.json", "base/model.safetensors"]),
    )
    config = config_from_json((folder / SR_CONFIG_FILE).read_text(encoding="utf-8"))
    base = coglm if shares == SHARED else load_coglm(folder / "base", device=device, dtype=dtype)
    model = build_sr(base, config)
    check_safetensors(folder / MIXINS_FILE)
    state = load_file(folder / MIXINS_FILE, device=str(device))
    if dtype is not None:
        state = {k: v.to(dtype) for k, v in state.items()}
    model.load_mixin_state_dict(state)
    return model
