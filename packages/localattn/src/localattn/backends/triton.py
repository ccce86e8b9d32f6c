"""Triton backend: fused forward/backward kernels registered as ``torch.library`` custom ops.

``triton`` is optional (``pip install localattn[triton]``) and imported only when a kernel runs.
On CPU tensors the kernels run only under the Triton interpreter (``TRITON_INTERPRET=1``), which
is how CI tests them.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch

from localattn._validate import AttentionInputs
from localattn.backends._kernel_args import eager_autograd, register_ops, run_op, stat_dtype
from localattn.backends.base import Backend
from localattn.types import WindowSpec


@dataclass(frozen=True)
class TritonTiling:
    """Launch shape of the kernels.

    Attributes:
        tile_h, tile_w: Queries per program (rows, columns); powers of 2, product >= 16 on GPU.
        key_rows: Key rows loaded per inner step (power of 2).
        block_t: Global tokens per inner step (power of 2, >= 16 on GPU).
        min_block_d: Smallest padded head dim (tl.dot needs >= 16 on GPU).
        min_block_n: Smallest key block (key_rows is raised to reach it; >= 16 on GPU).
        num_warps, num_stages: Triton launch options.
    """

    tile_h: int = 8
    tile_w: int = 8
    key_rows: int = 4
    block_t: int = 16
    min_block_d: int = 16
    min_block_n: int = 16
    num_warps: int = 4
    num_stages: int = 2


GPU_TILING = TritonTiling()
INTERPRETER_TILING = TritonTiling(
    tile_h=4, tile_w=4, key_rows=2, block_t=4, min_block_d=4, min_block_n=1
)


def interpreter_enabled() -> bool:
    """Whether ``TRITON_INTERPRET=1`` is set (kernels then run on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _tiling(device: torch.device) -> TritonTiling:
    return INTERPRETER_TILING if device.type == "cpu" else GPU_TILING


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, ...) -> contiguous (B·heads, ...)."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]).contiguous()


def _dot_fp32(x: torch.Tensor) -> bool:
    # the interpreter's bf16 tl.dot is wrong: always upcast there; fp32 inputs stay fp32 (ieee)
    return x.device.type == "cpu" or x.dtype == torch.float32


def _triton_forward_impl(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    extra_k: torch.Tensor,
    extra_v: torch.Tensor,
    extra_add: torch.Tensor,
    kh: int,
    kw: int,
    causal: bool,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, lse) from the fused Triton forward kernel."""
    from localattn._triton.kernels import launch_forward

    b, heads, h, w, d = q.shape
    out = torch.empty((b * heads, h, w, d), dtype=q.dtype, device=q.device)
    lse = torch.empty((b * heads, h, w), dtype=torch.float32, device=q.device)
    ratio = (h // k.shape[2], w // k.shape[3])
    launch_forward(
        _flat(q), _flat(k), _flat(v), _flat(extra_k), _flat(extra_v),
        _flat(extra_add.float()), out, lse, scale, WindowSpec(kh, kw, causal), ratio,
        _tiling(q.device), _dot_fp32(q),
    )  # fmt: skip
    return out.view(q.shape), lse.view(b, heads, h, w).to(stat_dtype(q.dtype))


def _triton_backward_impl(
    dout: torch.Tensor,
    dlse: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    extra_k: torch.Tensor,
    extra_v: torch.Tensor,
    extra_add: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    kh: int,
    kw: int,
    causal: bool,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of the Triton forward w.r.t. (q, k, v, extra_k, extra_v, extra_add)."""
    from localattn._triton.kernels import launch_backward

    b, heads, h, w, d = q.shape
    # delta' = rowsum(dO * O) - dlse folds the lse gradient into the softmax backward
    delta = (dout.float() * out.float()).sum(-1) - dlse.float()
    f32 = {"dtype": torch.float32, "device": q.device}
    dq = torch.empty((b * heads, h, w, d), dtype=q.dtype, device=q.device)
    grads = (
        dq,
        torch.zeros((b * heads, *k.shape[2:]), **f32),
        torch.zeros((b * heads, *v.shape[2:]), **f32),
        torch.zeros((b * heads, *extra_k.shape[2:]), **f32),
        torch.zeros((b * heads, *extra_v.shape[2:]), **f32),
        torch.zeros((b * heads, extra_add.shape[2]), **f32),
    )
    ratio = (h // k.shape[2], w // k.shape[3])
    launch_backward(
        _flat(q), _flat(k), _flat(v), _flat(extra_k), _flat(extra_v), _flat(extra_add.float()),
        _flat(dout), _flat(lse.float()), _flat(delta), grads, scale,
        WindowSpec(kh, kw, causal), ratio, _tiling(q.device), _dot_fp32(q),
    )  # fmt: skip
    shapes = (q, k, v, extra_k, extra_v, extra_add)
    return tuple(g.view(x.shape).to(x.dtype) for g, x in zip(grads, shapes, strict=False))


triton_forward, triton_backward = register_ops(
    "triton", _triton_forward_impl, _triton_backward_impl
)
_EAGER = eager_autograd(_triton_forward_impl, _triton_backward_impl)


class TritonBackend(Backend):
    """Fused Triton kernels for CUDA (and CPU tensors under ``TRITON_INTERPRET=1``)."""

    NAME = "triton"
    DESCRIPTION = "fused flash-style Triton kernels, forward + backward (CUDA; CPU via interpreter)"
    SUPPORTED_DEVICES = ("cuda",)
    SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
    MAX_KERNEL_SIZE = 63

    def is_available(self) -> list[str]:
        try:
            spec = importlib.util.find_spec("triton")
        except (ImportError, ValueError):  # e.g. sys.modules["triton"] = None
            spec = None
        if spec is None:
            return ["triton is not installed: pip install localattn[triton]"]
        return []

    def not_supported_reasons(self, inputs: AttentionInputs) -> list[str]:
        reasons = super().not_supported_reasons(inputs)
        if inputs.q.device.type == "cpu" and interpreter_enabled():
            reasons = [r for r in reasons if not r.startswith("device")]
        elif inputs.q.device.type == "cpu":
            reasons = [
                r + " (CPU tensors need TRITON_INTERPRET=1)" if r.startswith("device") else r
                for r in reasons
            ]
        return reasons

    def forward(
        self, inputs: AttentionInputs, extra_add: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return run_op(triton_forward, _EAGER, inputs, extra_add)
