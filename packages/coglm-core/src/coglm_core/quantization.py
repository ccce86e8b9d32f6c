"""Weight-only int8 quantisation of ``nn.Linear`` layers, for inference in less memory.

Each weight row (output channel) is stored as int8 with one float32 scale, symmetric:
``w ≈ q · scale`` with ``scale = max|w_row| / 127`` and ``q = round(w / scale)`` in [-127, 127].
Activations stay in the model dtype; the weight is dequantised at every call, one layer at a
time, so the memory transient is one layer's float weight. Inference only: the int8 weight and
its scale are buffers and receive no gradient.

For the 6B CogLM in bf16 the Linear weights (all but the embeddings) shrink to about half.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

QMAX = 127
"""Largest int8 magnitude used. -128 is left out so the range is symmetric (q and -q exist)."""


def int8_weight_bytes(
    in_features: int, out_features: int, bias: bool = True, bias_bytes: int = 2
) -> int:
    """Exact bytes held by an `Int8Linear` of this shape, for memory planning.

    ``out·in`` (int8 weight) + ``4·out`` (float32 ``weight_scale``) + ``bias_bytes·out`` (the bias
    keeps the model dtype: 2 for bf16/fp16, 4 for fp32). A bf16 ``nn.Linear`` of the same shape
    holds ``2·out·in + 2·out``.

    Raises:
        ValueError: a non-positive size.
    """
    if in_features <= 0 or out_features <= 0 or bias_bytes <= 0:
        raise ValueError(
            f"in_features={in_features}, out_features={out_features} and "
            f"bias_bytes={bias_bytes} must be > 0"
        )
    return (
        out_features * in_features + 4 * out_features + (bias_bytes * out_features if bias else 0)
    )


@torch.no_grad()
def quantize_rows(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row symmetric int8 of a floating (out, in) weight, computed in float32.

    Returns:
        (int8 (out, in) in [-127, 127], float32 (out,) scale); row i is ``q[i] · scale[i]``.
        On the meta device, meta tensors.

    Raises:
        ValueError: the weight is not floating point, or holds inf/NaN.
    """
    if not weight.is_floating_point():
        raise ValueError(f"can only quantise a floating Linear weight, got {weight.dtype}")
    w32 = weight.detach().float()  # may alias the weight when float32: no in-place ops on it
    if not weight.is_meta and not torch.isfinite(w32).all():
        raise ValueError("cannot quantise a Linear weight holding inf or NaN")
    amax = w32.abs().amax(dim=1)  # (out,)
    # An all-zero row would divide by zero; any scale gives q = 0 there, so use 1.
    scale = torch.where(amax > 0, amax / QMAX, torch.ones_like(amax))
    # The clamp only guards against w / scale landing a rounding error above 127.
    q = (w32 / scale[:, None]).round_().clamp_(-QMAX, QMAX).to(torch.int8)
    return q, scale


class Int8Linear(nn.Module):
    """``nn.Linear`` with an int8 weight and a per-output-channel float32 scale (inference only).

    Build it with `from_linear`; the constructor makes an empty layer (zero weight, unit scales)
    for loading a quantised ``state_dict``. ``.to(dtype)``/``.half()`` cast only the bias: the
    weight stays int8 (not a floating tensor) and ``weight_scale`` stays float32.

    Attributes:
        weight: (out_features, in_features) int8 buffer, values in [-127, 127].
        weight_scale: (out_features,) float32 buffer; row i of the float weight is
            ``weight[i] · weight_scale[i]``. All-zero rows have scale 1.
        bias: (out_features,) buffer in the model's floating dtype, or None.
    """

    weight: Tensor
    weight_scale: Tensor
    bias: Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(
                f"in_features={in_features} and out_features={out_features} must be > 0"
            )
        dtype = dtype or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise ValueError(f"dtype (of the bias) must be floating, got {dtype}")
        weight = torch.zeros(out_features, in_features, dtype=torch.int8, device=device)
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", torch.ones(out_features, device=device))
        self.register_buffer(
            "bias", torch.zeros(out_features, dtype=dtype, device=device) if bias else None
        )

    @property
    def in_features(self) -> int:
        """Input width."""
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        """Output width."""
        return self.weight.shape[0]

    @classmethod
    @torch.no_grad()
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """Quantise a floating ``nn.Linear`` (round to nearest, computed in float32).

        The result lives on the Linear's device, its bias (a copy) in the Linear's dtype. The
        Linear itself is left unchanged. A Linear on the meta device gives a meta layer.

        Raises:
            TypeError: ``linear`` is not an ``nn.Linear``.
            ValueError: the weight is not floating point, or holds inf/NaN.
        """
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear needs an nn.Linear, got {type(linear).__name__}")
        w = linear.weight  # (out, in)
        q, scale = quantize_rows(w)
        out, inp = w.shape
        # Built on meta so the constructor's placeholders cost nothing, then filled.
        layer = cls(inp, out, linear.bias is not None, device="meta", dtype=w.dtype)
        layer.weight = q
        layer.weight_scale = scale
        if linear.bias is not None:
            layer.bias = linear.bias.detach().clone()
        return layer

    def dequantize(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The float weight ``weight · weight_scale[:, None]``, (out_features, in_features)."""
        return self.weight.to(dtype) * self.weight_scale.to(dtype)[:, None]

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_features) -> (..., out_features), in the dtype of ``x``.

        Dequantises in ``x``'s dtype at every call (one layer's float weight of transient memory),
        then a plain ``F.linear``; int8 values are exact in bf16/fp16, only the scaling rounds.
        """
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantize(x.dtype), bias)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Int8Linear:
        # `.to(dtype)`, `.half()`, `.bfloat16()` cast every floating buffer, the scale included.
        # Keep it float32 (a bf16 scale adds up to 0.4% error on top of the quantisation error):
        # take the unconverted tensor to the new device instead.
        scale = self.weight_scale
        super()._apply(fn, recurse)
        moved = self.weight_scale
        if moved.dtype != torch.float32:
            self.weight_scale = (
                moved.float() if scale.is_meta else scale.to(moved.device, torch.float32)
            )
        return self

    def extra_repr(self) -> str:
        """Shape, bias and storage, as ``nn.Linear`` prints them."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, weight=int8 per-channel"
        )


def quantize_linears_int8(
    module: nn.Module, *, skip: Callable[[str, nn.Linear], bool] | None = None
) -> int:
    """Replace every ``nn.Linear`` below ``module`` by `Int8Linear.from_linear`, in place.

    Works on any module: each Linear is swapped on its parent, and the float Linear is dropped
    right after (its memory is freed as the loop goes, unless referenced elsewhere). Left as they
    are: Linears for which ``skip(qualified_name, linear)`` is True, and Linears whose weight is
    tied to a parameter of another module (e.g. an output head sharing the word embeddings:
    quantising it would untie the two and store the weight twice). A Linear registered under
    several parents becomes one shared `Int8Linear`. Already quantised layers are not Linears,
    so a second call replaces nothing.

    Modules that read a child Linear's ``.weight`` themselves (e.g. ``nn.MultiheadAttention``'s
    ``out_proj``) would get an int8 tensor: exclude such layers with ``skip``.

    Args:
        module: the model (or any sub-module); must not itself be an ``nn.Linear``.
        skip: ``skip(name, linear) -> True`` keeps that Linear in floating point; ``name`` is
            the qualified name of ``module.named_modules()``, e.g. ``"transformer.layers.0.mlp
            .dense_h_to_4h"``.

    Returns:
        the number of Linears replaced.

    Raises:
        ValueError: ``module`` is an ``nn.Linear`` (use `Int8Linear.from_linear`), or a Linear
            to quantise has a non-floating or non-finite weight.
    """
    if isinstance(module, nn.Linear):
        raise ValueError("module is itself an nn.Linear: use Int8Linear.from_linear(module)")
    owners: dict[int, set[int]] = {}  # parameter id -> ids of the modules that hold it
    for mod in module.modules():
        for p in mod.parameters(recurse=False):
            owners.setdefault(id(p), set()).add(id(mod))
    # (parent, attribute) pairs, not the Linears: holding them would keep every float weight
    # alive until the end.
    targets: list[tuple[nn.Module, str]] = []
    quantise: dict[int, bool] = {}  # Linear id -> decision, taken at its first name
    for parent_name, parent in module.named_modules():
        for child_name, child in parent.named_children():
            if not isinstance(child, nn.Linear):
                continue
            if id(child) not in quantise:
                name = f"{parent_name}.{child_name}" if parent_name else child_name
                tied = len(owners.get(id(child.weight), ())) > 1
                quantise[id(child)] = not tied and not (skip is not None and skip(name, child))
            if quantise[id(child)]:
                targets.append((parent, child_name))
    done: dict[int, Int8Linear] = {}  # Linear id -> its replacement (shared Linears stay shared)
    for parent, child_name in targets:
        linear = getattr(parent, child_name)
        if id(linear) not in done:
            done[id(linear)] = Int8Linear.from_linear(linear)
        setattr(parent, child_name, done[id(linear)])
        del linear
    return len(done)
