"""How many CPU threads torch uses: a policy that does not collapse when the machine is busy.

torch's OpenMP pool uses every core by default. When another process keeps one of them busy,
each parallel region waits for the thread that lost its core, and the many small kernels of
token-by-token decoding slow down 10–30× (docs/benchmarks.md, "Threads"). The ``auto`` policy
measures how many cores are idle when a command starts and uses that many threads (at least
one); ``N`` fixes the count. `COGVIEW2_THREADS` sets the policy for every command, the
``--threads`` option for one.
"""

from __future__ import annotations

import os

__all__ = ["THREADS_ENV", "apply_thread_policy", "idle_cores", "parse_threads"]

THREADS_ENV = "COGVIEW2_THREADS"
"""Environment variable with the default policy (``auto`` or a whole number >= 1)."""

IDLE_SAMPLE_SECONDS = 0.1
"""How long `idle_cores` watches the CPUs."""

IDLE_BUSY_PERCENT = 20.0
"""A core counts as idle when it was at most this busy: a core that another process keeps a
quarter busy already stalls the thread that waits for it; background noise below this does
not (one busy process shows as one core at 100 %, or two at about 50 % when it migrates)."""


def parse_threads(value: str | int | None) -> int | None:
    """``"auto"`` (or None) → None; a whole number >= 1 → that number.

    Raises:
        ValueError: anything else (the message names the allowed values).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if isinstance(value, bool) or n < 1 or str(n) != str(value).strip():
        raise ValueError(f"threads must be 'auto' or a whole number >= 1, got {value!r}")
    return n


def idle_cores(sample_seconds: float = IDLE_SAMPLE_SECONDS) -> int:
    """Cores this process may use that are idle now, measured over ``sample_seconds``
    (psutil's per-CPU utilisation; at least 1)."""
    import psutil

    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    busy = psutil.cpu_percent(interval=sample_seconds, percpu=True)
    if allowed is not None and max(allowed) < len(busy):
        busy = [busy[i] for i in allowed]
    return max(1, sum(b <= IDLE_BUSY_PERCENT for b in busy))


def apply_thread_policy(threads: str | int | None = None) -> int:
    """Set torch's intra-op thread count from ``threads`` (None: ``$COGVIEW2_THREADS``, else
    ``auto``) and return it.

    Raises:
        ValueError: a value that is neither ``auto`` nor a whole number >= 1.
    """
    import torch

    if threads is None:
        threads = os.environ.get(THREADS_ENV) or "auto"
    try:
        n = parse_threads(threads)
    except ValueError as err:
        source = THREADS_ENV if threads == os.environ.get(THREADS_ENV) else "--threads"
        raise ValueError(f"{source}: {err}") from None
    n = idle_cores() if n is None else n
    torch.set_num_threads(n)
    return n
