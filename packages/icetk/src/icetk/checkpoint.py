"""Reading and writing weights: the official ``ice_image.pt``, our safetensors, atomic writes."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from icetk.vqvae import HVQVAE, VQVAEConfig

logger = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, fsync it, then rename.

    A crash or kill at any point leaves either the old file or the complete new one, never a
    truncated file; the temporary file is removed on error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def require_file(path: str | os.PathLike, what: str) -> Path:
    """FileNotFoundError naming ``what`` and the absolute path looked at, unless it is a file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: looked for {p.resolve()}")
    return p


def check_state_dict(model: HVQVAE, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """ValueError listing missing keys or shape mismatches of ``sd`` against ``model``."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    if missing:
        shown = ", ".join(missing[:20]) + (
            f" ... (+{len(missing) - 20} more)" if len(missing) > 20 else ""
        )
        raise ValueError(f"{source}: {len(missing)} VQ-VAE keys are missing: {shown}")
    wrong = [
        f"{k}: file {tuple(getattr(sd[k], 'shape', ('not a tensor',)))} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if not isinstance(sd[k], torch.Tensor) or tuple(sd[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise ValueError(f"{source}: shape mismatch (wrong VQVAEConfig?): " + "; ".join(wrong[:10]))
    extra = sorted(set(sd) - set(own))
    if extra:
        logger.info("%s: ignoring %d extra keys, e.g. %s", source, len(extra), extra[:5])


def _build(config: VQVAEConfig, sd: Mapping[str, torch.Tensor], source: str) -> HVQVAE:
    """Build on the meta device (no random init), check the keys, then assign float32 copies."""
    with torch.device("meta"):
        model = HVQVAE(config)
    check_state_dict(model, sd, source)
    own = model.state_dict()
    tensors = {k: sd[k].float() if sd[k].is_floating_point() else sd[k] for k in own}
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval()


def load_official_vqvae(path: str | os.PathLike, config: VQVAEConfig | None = None) -> HVQVAE:
    """Load the official ``ice_image.pt`` (``{'module': state_dict}``) without running pickled code.

    Loading is non-strict like icetk's (extra keys are logged and ignored) but every key the
    model needs must be present; weights are cast to float32 (call ``.half()`` for fp16).

    Args:
        path: The ``.pt`` file.
        config: Sizes (official by default).

    Raises:
        FileNotFoundError: the file does not exist (the message names the path).
        ValueError: the file is not a readable torch file, lacks ``'module'``, or misses keys.
    """
    p = require_file(path, "VQ-VAE weights (ice_image.pt)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise ValueError(f"cannot read {p.resolve()} as a torch checkpoint: {err}") from err
    if not isinstance(obj, Mapping) or not isinstance(obj.get("module"), Mapping):
        keys = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
        raise ValueError(f"{p.resolve()}: expected {{'module': state_dict}}, found {keys}")
    return _build(config or VQVAEConfig.official(), obj["module"], str(p.resolve()))


def save_vqvae(model: HVQVAE, path: str | os.PathLike) -> Path:
    """Write the VQ-VAE state dict as safetensors, atomically."""
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(sd, tmp))


def load_vqvae(path: str | os.PathLike, config: VQVAEConfig) -> HVQVAE:
    """Load a VQ-VAE saved by ``save_vqvae``; ValueError naming the file if unreadable or mismatched."""
    p = require_file(path, "VQ-VAE weights (safetensors)")
    try:
        sd = load_file(p)
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"cannot read {p.resolve()} as safetensors: {err}") from err
    return _build(config, sd, str(p.resolve()))
