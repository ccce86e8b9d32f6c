"""Triton backend: fused forward/backward kernels registered as ``torch.library`` custom ops.

``triton`` is optional (``pip install localattn[triton]``) and imported only when a kernel runs.
On CPU tensors the kernels run only under the Triton interpreter (``TRITON_INTERPRET=1``), which
is how CI tests them.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
from dataclasses import dataclass

import torch

from localattn._na_tiling import NASpec, na_tables, num_tiles
from localattn._na_validate import NAInputs
from localattn._validate import AttentionInputs
from localattn.backends._kernel_args import (
    eager_autograd,
    na_eager_autograd,
    register_na_ops,
    register_ops,
    run_na_op,
    run_op,
    stat_dtype,
)
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
        na_block_m: Most queries of a neighborhood tile (power of 2; the tile is chosen to
            fill it).
        na_block_n: Band keys per inner step of the neighborhood kernels (power of 2).
        num_warps, num_stages: Triton launch options.
    """

    tile_h: int = 8
    tile_w: int = 8
    key_rows: int = 4
    block_t: int = 16
    min_block_d: int = 16
    min_block_n: int = 16
    na_block_m: int = 64
    na_block_n: int = 64
    num_warps: int = 4
    num_stages: int = 2


GPU_TILING = TritonTiling()
INTERPRETER_TILING = TritonTiling(
    tile_h=4,
    tile_w=4,
    key_rows=2,
    block_t=4,
    min_block_d=4,
    min_block_n=1,
    na_block_m=16,
    na_block_n=16,
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


def na_kernel_tile(spec: NASpec, block_m: int, block_n: int) -> tuple[int, ...]:
    """Tile of at most ``block_m`` queries (powers of 2 per axis) with the fewest padded
    (query block × key block) products: tiles · ceil(band keys / block_n)."""
    best: tuple[int, tuple[int, ...]] | None = None
    options = [[t for t in (1, 2, 4, 8, 16, 32, 64, 128) if t <= block_m] for _ in spec.shape]
    for tile in itertools.product(*options):
        if math.prod(tile) > block_m:
            continue
        band = math.prod(t + k - 1 for t, k in zip(tile, spec.kernel_size, strict=True))
        cost = num_tiles(spec, tile) * -(-band // block_n)
        if best is None or cost < best[0]:
            best = (cost, tile)
    assert best is not None  # the all-ones tile always fits
    return best[1]


def _na_setup(q, kernel_size, dilation, is_causal):
    tiling = _tiling(q.device)
    spec = NASpec(tuple(q.shape[1:-2]), tuple(kernel_size), tuple(dilation), tuple(is_causal))
    tile = na_kernel_tile(spec, tiling.na_block_m, tiling.na_block_n)
    return tiling, na_tables(spec, tile, q.device)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, *spatial, heads, D) -> contiguous (B, N, heads, D)."""
    return x.reshape(x.shape[0], -1, *x.shape[-2:]).contiguous()


def _triton_na_forward_impl(q, k, v, extra_k, extra_v, kernel_size, dilation, is_causal, scale):
    """(out, lse) of neighborhood attention from the fused Triton forward kernel."""
    from localattn._triton.na_kernels import launch_na_forward

    tiling, tables = _na_setup(q, kernel_size, dilation, is_causal)
    qt = _tokens(q)
    out = torch.empty_like(qt)
    lse = torch.empty(qt.shape[:-1], dtype=torch.float32, device=q.device)
    launch_na_forward(qt, _tokens(k), _tokens(v), extra_k.contiguous(), extra_v.contiguous(),
                      out, lse, tables, scale, tiling, _dot_fp32(q))  # fmt: skip
    return out.view(q.shape), lse.view(q.shape[:-1]).to(stat_dtype(q.dtype))


def _triton_na_backward_impl(
    dout, dlse, q, k, v, extra_k, extra_v, out, lse, kernel_size, dilation, is_causal, scale
):
    """Gradients of the Triton neighborhood forward w.r.t. (q, k, v, extra_k, extra_v)."""
    from localattn._triton.na_kernels import launch_na_backward

    tiling, tables = _na_setup(q, kernel_size, dilation, is_causal)
    # delta' = rowsum(dO * O) - dlse folds the lse gradient into the softmax backward
    delta = _tokens((dout.float() * out.float()).sum(-1, keepdim=True) - dlse.float()[..., None])
    qt = _tokens(q)
    f32 = {"dtype": torch.float32, "device": q.device}
    grads = (
        torch.empty_like(qt),
        torch.zeros(qt.shape, **f32),
        torch.zeros(qt.shape, **f32),
        torch.zeros(extra_k.shape, **f32),
        torch.zeros(extra_v.shape, **f32),
    )
    launch_na_backward(
        qt, _tokens(k), _tokens(v), extra_k.contiguous(), extra_v.contiguous(), _tokens(dout),
        _tokens(lse.float()[..., None]), delta, grads, tables, scale, tiling, _dot_fp32(q),
    )  # fmt: skip
    shapes = (q, k, v, extra_k, extra_v)
    return tuple(g.view(x.shape).to(x.dtype) for g, x in zip(grads, shapes, strict=True))


triton_na_forward, _ = register_na_ops("triton", _triton_na_forward_impl, _triton_na_backward_impl)
_EAGER_NA = na_eager_autograd(_triton_na_forward_impl, _triton_na_backward_impl)


class TritonBackend(Backend):
    """Fused Triton kernels for CUDA (and CPU tensors under ``TRITON_INTERPRET=1``)."""

    NAME = "triton"
    DESCRIPTION = "fused flash-style Triton kernels, forward + backward (CUDA; CPU via interpreter)"
    SUPPORTED_DEVICES = ("cuda",)
    SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
    MAX_KERNEL_SIZE = 63
    SUPPORTS_NA = True

    def is_available(self) -> list[str]:
        try:
            spec = importlib.util.find_spec("triton")
        except (ImportError, ValueError):  # e.g. sys.modules["triton"] = None
            spec = None
        if spec is None:
            return ["triton is not installed: pip install localattn[triton]"]
        return []

    def not_supported_reasons(self, inputs: AttentionInputs) -> list[str]:
        return self._interpreter_reasons(super().not_supported_reasons(inputs), inputs.q)

    def na_not_supported_reasons(self, inputs: NAInputs) -> list[str]:
        return self._interpreter_reasons(super().na_not_supported_reasons(inputs), inputs.q)

    def is_compile_failure(self, error: Exception) -> bool:
        # Triton's own errors: CompilationError, OutOfResources, a missing/old driver or ptxas
        return type(error).__module__.split(".")[0] == "triton"

    @staticmethod
    def _interpreter_reasons(reasons: list[str], q: torch.Tensor) -> list[str]:
        if q.device.type == "cpu" and interpreter_enabled():
            reasons = [r for r in reasons if not r.startswith("device")]
        elif q.device.type == "cpu":
            reasons = [
                r + " (CPU tensors need TRITON_INTERPRET=1)" if r.startswith("device") else r
                for r in reasons
            ]
        return reasons

    def forward(
        self, inputs: AttentionInputs, extra_add: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return run_op(triton_forward, _EAGER, inputs, extra_add)

    def na_forward(self, inputs: NAInputs) -> tuple[torch.Tensor, torch.Tensor]:
        return run_na_op(triton_na_forward, _EAGER_NA, inputs)
