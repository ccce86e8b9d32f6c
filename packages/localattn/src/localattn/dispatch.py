"""Backend registry and selection: explicit argument > ``use_backend`` > ``LOCALATTN_BACKEND`` > auto."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator

import torch

from localattn._validate import AttentionInputs
from localattn.backends.base import Backend
from localattn.backends.flex import FlexBackend
from localattn.backends.reference import ReferenceBackend
from localattn.backends.triton import TritonBackend

logger = logging.getLogger(__name__)

ENV_VAR = "LOCALATTN_BACKEND"
"""Environment variable naming the backend to use when no argument or context overrides it."""

BACKENDS: dict[str, Backend] = {
    b.NAME: b for b in (TritonBackend(), FlexBackend(), ReferenceBackend())
}

PRIORITY: dict[str, tuple[str, ...]] = {
    "cuda": ("triton", "flex", "reference"),
}
"""Auto-selection order per device type; other devices use ``DEFAULT_PRIORITY``.

On CPU the reference is first: it is faster than eager FlexAttention and has a backward.
"""

DEFAULT_PRIORITY: tuple[str, ...] = ("reference",)

_override_stack: list[str | None] = []
"""Names pushed by :func:`use_backend` (a plain list, so torch.compile can trace the lookup)."""


def get_backend(name: str) -> Backend:
    """The registered backend called ``name``; ValueError listing the known names otherwise."""
    if name not in BACKENDS:
        raise ValueError(f"unknown localattn backend {name!r}; known: {sorted(BACKENDS)}")
    return BACKENDS[name]


@contextlib.contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Within the block, calls with ``backend=None`` use ``name`` (None restores auto choice).

    The override is process-wide (not per thread) and blocks nest.

    Example:
        >>> with localattn.use_backend("reference"):
        ...     out = localattn.local_attention_2d(q, k, v, 3)  # doctest: +SKIP
    """
    if name is not None:
        get_backend(name)
    _override_stack.append(name)
    try:
        yield
    finally:
        _override_stack.pop()


def requested_backend(explicit: str | None) -> str | None:
    """The name forced by the argument, the context manager or the env var, or None (auto)."""
    if explicit is not None:
        return explicit
    if _override_stack:
        return _override_stack[-1]
    env = os.environ.get(ENV_VAR, "").strip()
    return env or None


_FAILED: set[tuple[str, str]] = set()
"""(backend, device type) pairs whose kernels failed to compile in this process: auto
selection skips them (a backend forced by name still runs, and raises)."""


def _select(
    reasons_of: Callable[[Backend], list[str]], device_type: str, explicit: str | None
) -> Backend:
    name = requested_backend(explicit)
    if name is not None:
        backend = get_backend(name)
        reasons = reasons_of(backend)
        if reasons:
            raise ValueError(
                f"localattn backend {name!r} cannot run these inputs: " + "; ".join(reasons)
            )
        return backend
    tried: list[str] = []
    for candidate in PRIORITY.get(device_type, DEFAULT_PRIORITY):
        backend = BACKENDS[candidate]
        reasons = reasons_of(backend)
        if (candidate, device_type) in _FAILED:
            reasons = [*reasons, "its kernels failed to compile here earlier"]
        if not reasons:
            if not torch.compiler.is_compiling():  # logging would break a torch.compile graph
                logger.debug("localattn: using backend %r (skipped: %s)", candidate, tried)
            return backend
        tried.append(f"{candidate}: {'; '.join(reasons)}")
    raise ValueError("no localattn backend can run these inputs: " + " | ".join(tried))


def select_backend(inputs: AttentionInputs, explicit: str | None = None) -> Backend:
    """Pick the backend for ``inputs``; ValueError naming the reasons if a forced one cannot run."""
    return _select(lambda b: b.not_supported_reasons(inputs), inputs.q.device.type, explicit)


def run_backend(
    reasons_of: Callable[[Backend], list[str]],
    device_type: str,
    explicit: str | None,
    call: Callable[[Backend], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Select a backend and ``call`` it; when an automatically chosen backend fails to compile
    its kernels (``Backend.is_compile_failure``), warn in one line and fall back to the next."""
    backend = _select(reasons_of, device_type, explicit)
    if requested_backend(explicit) is not None or torch.compiler.is_compiling():
        return call(backend)
    try:
        return call(backend)
    except Exception as error:
        if not backend.is_compile_failure(error):
            raise
        _FAILED.add((backend.NAME, device_type))
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        warnings.warn(
            f"localattn: backend {backend.NAME!r} failed to compile on {device_type} "
            f"({type(error).__name__}: {first_line}); falling back to the next backend",
            RuntimeWarning,
            stacklevel=3,
        )
        return run_backend(reasons_of, device_type, explicit, call)
