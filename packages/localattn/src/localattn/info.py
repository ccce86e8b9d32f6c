"""``python -m localattn.info``: the backends, what they support, and whether they run here."""

from __future__ import annotations

import torch

from localattn.dispatch import BACKENDS, DEFAULT_PRIORITY, ENV_VAR, PRIORITY, requested_backend


def _dtypes(dtypes: tuple[torch.dtype, ...]) -> str:
    return ",".join(str(d).removeprefix("torch.") for d in dtypes)


def _backward(backend) -> str:
    if not backend.SUPPORTS_BACKWARD:
        return "no"
    return "yes" if backend.BACKWARD_DEVICES is None else ",".join(backend.BACKWARD_DEVICES)


def backend_table() -> str:
    """The capability/availability table as text."""
    rows = [
        ("backend", "available", "devices", "dtypes", "causal", "cross", "backward",
         "ops", "notes")
    ]  # fmt: skip
    for name, backend in BACKENDS.items():
        missing = backend.is_available()
        rows.append(
            (
                name,
                "yes" if not missing else "no: " + "; ".join(missing),
                ",".join(backend.SUPPORTED_DEVICES),
                _dtypes(backend.SUPPORTED_DTYPES),
                "yes" if backend.SUPPORTS_CAUSAL else "no",
                "yes" if backend.SUPPORTS_CROSS_RESOLUTION else "no",
                _backward(backend),
                "local_attention_2d" + (",na1d,na2d,na3d" if backend.SUPPORTS_NA else ""),
                backend.DESCRIPTION,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(wd) for cell, wd in zip(r, widths, strict=False)).rstrip()
        for r in rows
    ]
    order = ", ".join(f"{dev}: {' > '.join(p)}" for dev, p in PRIORITY.items())
    lines += [
        "",
        f"torch {torch.__version__}; CUDA available: {torch.cuda.is_available()}",
        f"auto order: {order}; other devices: {' > '.join(DEFAULT_PRIORITY)}",
        f"{ENV_VAR}={requested_backend(None) or '(unset: auto)'}",
    ]
    return "\n".join(lines)


def main() -> None:
    """Print :func:`backend_table`."""
    print(backend_table())


if __name__ == "__main__":
    main()
