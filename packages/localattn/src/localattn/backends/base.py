"""The backend interface: declared capabilities plus ``not_supported_reasons``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from localattn._na_validate import NAInputs
from localattn._validate import AttentionInputs


class Backend(ABC):
    """One implementation of ``local_attention_2d`` (and, where ``SUPPORTS_NA``, of the
    neighborhood-attention ops ``na1d``/``na2d``/``na3d``).

    Subclasses declare what they support as class attributes and implement :meth:`forward`.
    ``not_supported_reasons`` turns the declarations into human-readable reasons; subclasses
    extend it with checks that the declarations cannot express.
    """

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    SUPPORTED_DEVICES: ClassVar[tuple[str, ...]]
    SUPPORTED_DTYPES: ClassVar[tuple[torch.dtype, ...]]
    SUPPORTS_CAUSAL: ClassVar[bool] = True
    SUPPORTS_CROSS_RESOLUTION: ClassVar[bool] = True
    SUPPORTS_EXTRA_TOKENS: ClassVar[bool] = True
    SUPPORTS_BACKWARD: ClassVar[bool] = True
    BACKWARD_DEVICES: ClassVar[tuple[str, ...] | None] = None
    """Device types with a backward (None: every supported device)."""
    MAX_KERNEL_SIZE: ClassVar[int | None] = None
    SUPPORTS_NA: ClassVar[bool] = False
    """Implements :meth:`na_forward` (neighborhood attention, NATTEN semantics)."""
    ERROR_ATOL: ClassVar[dict[torch.dtype, float]] = {
        torch.float64: 1e-9,
        torch.float32: 2e-5,
        torch.float16: 2e-3,
        torch.bfloat16: 2e-2,
    }

    def is_available(self) -> list[str]:
        """Reasons the backend cannot run at all here (missing package, no driver); [] if fine."""
        return []

    def is_compile_failure(self, error: Exception) -> bool:
        """Whether ``error`` (raised by this backend's forward) means its kernels cannot be
        built on this machine, so that automatic selection may fall back to the next backend."""
        return False

    def _tensor_reasons(self, q: torch.Tensor, requires_grad: bool) -> list[str]:
        """Availability, device, dtype and backward reasons shared by every op."""
        reasons = list(self.is_available())
        if q.device.type not in self.SUPPORTED_DEVICES:
            reasons.append(
                f"device type {q.device.type!r} not supported (supports {self.SUPPORTED_DEVICES})"
            )
        if q.dtype not in self.SUPPORTED_DTYPES:
            reasons.append(f"dtype {q.dtype} not supported (supports {self.SUPPORTED_DTYPES})")
        if requires_grad and torch.is_grad_enabled():
            if not self.SUPPORTS_BACKWARD:
                reasons.append("backward not supported (an input requires grad)")
            elif self.BACKWARD_DEVICES is not None and q.device.type not in self.BACKWARD_DEVICES:
                reasons.append(
                    f"no {q.device.type} backward in torch {torch.__version__} "
                    f"(backward only on {self.BACKWARD_DEVICES}); an input requires grad"
                )
        return reasons

    def not_supported_reasons(self, inputs: AttentionInputs) -> list[str]:
        """Every reason this backend cannot run ``inputs`` (empty list: it can)."""
        reasons = self._tensor_reasons(inputs.q, inputs.requires_grad)
        if inputs.window.causal and not self.SUPPORTS_CAUSAL:
            reasons.append("causal windows not supported")
        if inputs.ratio != (1, 1) and not self.SUPPORTS_CROSS_RESOLUTION:
            reasons.append("cross-resolution (query grid larger than key grid) not supported")
        if inputs.num_extra and not self.SUPPORTS_EXTRA_TOKENS:
            reasons.append("extra (global) tokens not supported")
        size = max(inputs.window.kh, inputs.window.kw)
        if self.MAX_KERNEL_SIZE is not None and size > self.MAX_KERNEL_SIZE:
            reasons.append(f"kernel size {size} > MAX_KERNEL_SIZE={self.MAX_KERNEL_SIZE}")
        return reasons

    @abstractmethod
    def forward(
        self, inputs: AttentionInputs, extra_add: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the attention.

        Args:
            inputs: Validated inputs.
            extra_add: (B, heads, T) additive term for the global tokens (bias, -inf = masked),
                or None without global tokens.

        Returns:
            out (B, heads, H, W, D) in the input dtype, and lse (B, heads, H, W) in float32
            (float64 for float64 inputs).
        """

    def na_not_supported_reasons(self, inputs: NAInputs) -> list[str]:
        """Every reason this backend cannot run the neighborhood-attention ``inputs``."""
        if not self.SUPPORTS_NA:
            return ["neighborhood attention (na1d/na2d/na3d) not implemented"]
        return self._tensor_reasons(inputs.q, inputs.requires_grad)

    def na_forward(self, inputs: NAInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Run neighborhood attention: out (B, *spatial, heads, D) in q's dtype and lse
        (B, *spatial, heads) in float32 (float64 for float64 inputs)."""
        raise NotImplementedError(f"backend {self.NAME!r} has no neighborhood attention")
