"""FlexAttention backend: the same pattern as a ``mask_mod`` (window) plus a ``score_mod`` (bias).

Honest limits with torch 2.13: on CPU FlexAttention has no backward, and eager FlexAttention
materialises dense scores (a correctness path, not a fast one). On CUDA the op is compiled once
per process with ``torch.compile`` and runs block-sparse forward and backward.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import torch

from localattn._na_tiling import NASpec, group_length, window_bounds
from localattn._na_validate import NAInputs
from localattn._validate import AttentionInputs
from localattn.backends.base import Backend
from localattn.types import WindowSpec

_MIN_CUDA_HEAD_DIM = 16


def _flex_module() -> Any | None:
    try:
        from torch.nn.attention import flex_attention as module
    except ImportError:
        return None
    return module


def window_mask_mod(q_hw: tuple[int, int], k_hw: tuple[int, int], window: WindowSpec):
    """A FlexAttention ``mask_mod`` over flattened grids: True where kv is in q's window.

    Key indices >= H'·W' are global tokens and always pass (their padding is a score_mod -inf).
    """
    (h, w), (hk, wk) = q_hw, k_hw
    ah, aw, n_local = h // hk, w // wk, hk * wk
    kh, kw, slots = window.kh, window.kw, window.num_slots
    rh, rw = window.radius_h, window.radius_w

    def mask_mod(b, head, q_idx, kv_idx):
        ci, cj = (q_idx // w) // ah, (q_idx % w) // aw
        kv = torch.clamp(kv_idx, max=n_local - 1)
        dy, dx = kv // wk - ci + rh, kv % wk - cj + rw
        inside = (dy >= 0) & (dy < kh) & (dx >= 0) & (dx < kw) & (dy * kw + dx < slots)
        return inside | (kv_idx >= n_local)

    return mask_mod


def neighborhood_mask_mod(spec: NASpec):
    """A FlexAttention ``mask_mod`` over the flattened grid: True where kv is in q's
    neighborhood (NATTEN semantics, ``localattn._na_tiling``); kv >= N (additional keys) passes."""
    n = spec.num_tokens
    strides = [math.prod(spec.shape[a + 1 :]) for a in range(spec.ndim)]

    def mask_mod(b, head, q_idx, kv_idx):
        kv = torch.clamp(kv_idx, max=n - 1)
        allowed = kv_idx >= 0
        for a in range(spec.ndim):
            length, k, d = spec.shape[a], spec.kernel_size[a], spec.dilation[a]
            qi, ki = (q_idx // strides[a]) % length, (kv // strides[a]) % length
            r, g, kg = qi % d, qi // d, ki // d
            lo, hi = window_bounds(g, group_length(length, d, r), k, spec.is_causal[a])
            allowed = allowed & (ki % d == r) & (kg >= lo) & (kg <= hi)
        return allowed | (kv_idx >= n)

    return mask_mod


@lru_cache(maxsize=32)
def _na_block_mask(spec: NASpec, num_extra: int, device: str):
    module = _flex_module()
    assert module is not None
    n = spec.num_tokens
    return module.create_block_mask(
        neighborhood_mask_mod(spec), None, None, n, n + num_extra, device=device
    )


def _lse_request(module) -> dict[str, Any]:
    if hasattr(module, "AuxRequest"):
        return {"return_aux": module.AuxRequest(lse=True)}
    return {"return_lse": True}


@lru_cache(maxsize=32)
def _block_mask(q_hw, k_hw, window: WindowSpec, num_extra: int, device: str):
    module = _flex_module()
    assert module is not None
    mask_mod = window_mask_mod(q_hw, k_hw, window)
    q_len, kv_len = q_hw[0] * q_hw[1], k_hw[0] * k_hw[1] + num_extra
    return module.create_block_mask(mask_mod, None, None, q_len, kv_len, device=device)


@lru_cache(maxsize=1)
def _compiled_flex():
    module = _flex_module()
    assert module is not None
    return torch.compile(module.flex_attention, dynamic=False)


class FlexBackend(Backend):
    """torch FlexAttention with an equivalent block mask (compiled on CUDA, eager elsewhere)."""

    NAME = "flex"
    DESCRIPTION = (
        "torch FlexAttention block mask; compiled on CUDA, eager+dense and forward-only on CPU"
    )
    SUPPORTED_DEVICES = ("cpu", "cuda")
    SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
    BACKWARD_DEVICES = ("cuda",)
    SUPPORTS_NA = True

    def is_available(self) -> list[str]:
        if _flex_module() is None:
            return [f"torch {torch.__version__} has no torch.nn.attention.flex_attention"]
        return []

    @staticmethod
    def _cuda_limits(q: torch.Tensor) -> list[str]:
        reasons = []
        if q.device.type == "cuda" and q.shape[-1] < _MIN_CUDA_HEAD_DIM:
            reasons.append(f"head dim {q.shape[-1]} < {_MIN_CUDA_HEAD_DIM} on CUDA")
        if q.device.type == "cuda" and q.dtype == torch.float64:
            reasons.append("float64 is not supported by compiled FlexAttention kernels")
        return reasons

    def not_supported_reasons(self, inputs: AttentionInputs) -> list[str]:
        return super().not_supported_reasons(inputs) + self._cuda_limits(inputs.q)

    def forward(
        self, inputs: AttentionInputs, extra_add: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        module = _flex_module()
        assert module is not None
        q, k, v = inputs.q, inputs.k, inputs.v
        extra_k, extra_v = inputs.extra_k, inputs.extra_v
        if not torch.is_grad_enabled():
            # flex refuses CPU inputs that require grad even under no_grad; nothing to track here
            q, k, v = q.detach(), k.detach(), v.detach()
            extra_k = None if extra_k is None else extra_k.detach()
            extra_v = None if extra_v is None else extra_v.detach()
            extra_add = None if extra_add is None else extra_add.detach()
        b, heads, h, w, d = q.shape
        hk, wk = k.shape[2], k.shape[3]
        keys, vals = k.reshape(b, heads, hk * wk, d), v.reshape(b, heads, hk * wk, d)
        score_mod = None
        if extra_k is not None and extra_v is not None and extra_add is not None:
            keys = torch.cat([keys, extra_k], dim=2)
            vals = torch.cat([vals, extra_v], dim=2)
            n_local, add = hk * wk, extra_add

            def score_mod(score, bi, hi, q_idx, kv_idx):
                t = torch.clamp(kv_idx - n_local, min=0)
                return torch.where(kv_idx >= n_local, score + add[bi, hi, t].to(score.dtype), score)

        block_mask = _block_mask((h, w), (hk, wk), inputs.window, inputs.num_extra, str(q.device))
        fn = _compiled_flex() if q.device.type == "cuda" else module.flex_attention
        out, aux = fn(
            q.reshape(b, heads, h * w, d),
            keys,
            vals,
            score_mod=score_mod,
            block_mask=block_mask,
            scale=inputs.scale,
            **_lse_request(module),
        )
        lse = aux.lse if hasattr(aux, "lse") else aux
        lse_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
        return out.view(b, heads, h, w, d), lse.view(b, heads, h, w).to(lse_dtype)

    def na_not_supported_reasons(self, inputs: NAInputs) -> list[str]:
        reasons = super().na_not_supported_reasons(inputs)
        return reasons + self._cuda_limits(inputs.q)

    def na_forward(self, inputs: NAInputs) -> tuple[torch.Tensor, torch.Tensor]:
        module = _flex_module()
        assert module is not None
        tensors = [inputs.q, inputs.k, inputs.v]
        if inputs.extra_k is not None and inputs.extra_v is not None:
            tensors += [inputs.extra_k, inputs.extra_v]
        if not torch.is_grad_enabled():  # flex refuses CPU inputs that require grad
            tensors = [t.detach() for t in tensors]
        q = tensors[0]
        b, heads, d = q.shape[0], q.shape[-2], q.shape[-1]

        def heads_first(x):  # (B, *, heads, D) -> (B, heads, N, D)
            return x.reshape(b, -1, heads, d).transpose(1, 2)

        keys, vals = heads_first(tensors[1]), heads_first(tensors[2])
        if len(tensors) == 5:
            keys = torch.cat([keys, heads_first(tensors[3])], dim=2)
            vals = torch.cat([vals, heads_first(tensors[4])], dim=2)
        mask = _na_block_mask(inputs.spec, inputs.num_extra, str(q.device))
        fn = _compiled_flex() if q.device.type == "cuda" else module.flex_attention
        out, aux = fn(heads_first(q), keys, vals, block_mask=mask, scale=inputs.scale,
                      **_lse_request(module))  # fmt: skip
        lse = aux.lse if hasattr(aux, "lse") else aux
        lse_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
        return (
            out.transpose(1, 2).reshape(q.shape),
            lse.transpose(1, 2).reshape(q.shape[:-1]).to(lse_dtype),
        )
