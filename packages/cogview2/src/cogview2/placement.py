"""Runtime side of a `MemoryPlan`: put each stage's weights on the device when the stage starts.

A `Part` is a module whose tensors come from one safetensors file (CogLM's ``model.safetensors``,
an SR model's ``mixins.safetensors`` or its own ``base/``). `Placer.enter(stage)` first releases
the parts the stage does not use, then brings the ones it uses, so at most one stage's weights
are on the device (a base shared by stage 1 and DSR stays across that boundary).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor, nn

from coglm_core import Int8Linear, quantize_rows

from .memory import MemoryPlan


@dataclass
class Part:
    """A module and where its tensors are stored.

    Attributes:
        module: Receives the tensors (its state-dict keys are the file's keys minus ``strip``).
        file: The safetensors file; None when the weights exist only in memory.
        strip: Key prefix of the file that the module's keys lack (``"mixins."``).
    """

    module: nn.Module
    file: Path | None = None
    strip: str = ""


@torch.no_grad()
def load_part(part: Part, device: torch.device | str, dtype: torch.dtype | None) -> None:
    """Stream ``part.file`` into ``part.module`` on ``device``, one tensor at a time: cast
    floating tensors to ``dtype`` and quantise the weights of `Int8Linear` layers as they
    arrive, so the peak is the loaded module plus one stored tensor.

    Raises:
        ValueError: keys missing from / unexpected in the file (strict, as ``load_state_dict``).
    """
    if part.file is None:
        raise ValueError("this part has no file to load from")
    int8 = {n for n, m in part.module.named_modules() if isinstance(m, Int8Linear)}
    state: dict[str, Tensor] = {}
    # Read on the host (memory-mapped), then move one tensor at a time: any torch device works.
    with safe_open(part.file, framework="pt", device="cpu") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
            if not key.startswith(part.strip):
                raise ValueError(f"{part.file}: key {key!r} lacks the prefix {part.strip!r}")
            name = key[len(part.strip) :]
            tensor = f.get_tensor(key).to(device)
            owner, _, leaf = name.rpartition(".")
            if owner in int8 and leaf == "weight" and tensor.is_floating_point():
                state[name], state[f"{owner}.weight_scale"] = quantize_rows(tensor)
            elif dtype is not None and tensor.is_floating_point():
                state[name] = tensor.to(dtype)
            else:
                state[name] = tensor
            del tensor
    own = set(part.module.state_dict())
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    if missing or unexpected:
        raise ValueError(f"{part.file}: missing keys {missing[:5]}, unexpected {unexpected[:5]}")
    part.module.load_state_dict(state, assign=True)


class Placer:
    """Moves parts in and out of the execution device as a `MemoryPlan` says.

    Args:
        parts: Named parts (``"coglm"``, ``"dsr.mixins"``, ``"itersr.base"``, ...).
        stages: Parts each stage uses, e.g. ``{"coarse": ("coglm",), ...}``.
        plan: The plan (``placement`` and ``dtype`` are used here; int8 layers are already in
            the modules' structure).
        device: Execution device.
    """

    def __init__(
        self,
        parts: Mapping[str, Part],
        stages: Mapping[str, tuple[str, ...]],
        plan: MemoryPlan,
        device: torch.device | str,
    ) -> None:
        unknown = sorted({p for names in stages.values() for p in names} - set(parts))
        if unknown:
            raise ValueError(f"stages use unknown parts {unknown}")
        if plan.placement == "disk_offload":
            nofile = sorted(n for n, p in parts.items() if p.file is None)
            if nofile:
                raise ValueError(f"disk_offload needs a file for every part; {nofile} have none")
        self.parts, self.stages = dict(parts), dict(stages)
        self.plan, self.device = plan, torch.device(device)
        self.loaded: set[str] = set()

    @classmethod
    def resident(cls, device: torch.device | str) -> Placer:
        """A placer that never moves anything (models built and placed by the caller)."""
        return cls({}, {}, MemoryPlan("resident"), device)

    def prepare(self) -> None:
        """Initial placement: ``resident`` loads every part on the device, ``model_offload``
        in CPU memory; ``disk_offload`` loads nothing yet."""
        if self.plan.placement == "disk_offload":
            return
        home = self.device if self.plan.placement == "resident" else torch.device("cpu")
        for name, part in self.parts.items():
            if part.file is not None and _is_meta(part.module):
                load_part(part, home, self.plan.dtype)
            else:
                part.module.to(device=home, dtype=self.plan.dtype)
            if self.plan.placement == "resident":
                self.loaded.add(name)

    def enter(self, stage: str) -> None:
        """Make ``stage``'s parts available on the device (releasing the others first)."""
        if self.plan.placement == "resident" or stage not in self.stages:
            return
        needed = set(self.stages[stage])
        for name in sorted(self.loaded - needed):
            self._release(name)
        for name in sorted(needed - self.loaded):
            self._bring(name)

    def release_all(self) -> None:
        """Release every part (offload placements); a no-op for ``resident``."""
        if self.plan.placement != "resident":
            for name in sorted(self.loaded):
                self._release(name)

    def _bring(self, name: str) -> None:
        part = self.parts[name]
        if self.plan.placement == "disk_offload":
            load_part(part, self.device, self.plan.dtype)
        else:
            part.module.to(self.device)
        self.loaded.add(name)

    def _release(self, name: str) -> None:
        part = self.parts[name]
        # disk: drop the tensors (meta keeps shapes for the next load); memory: back to CPU
        part.module.to("meta" if self.plan.placement == "disk_offload" else "cpu")
        self.loaded.discard(name)


def _is_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in (*module.parameters(), *module.buffers()))
