"""`serve` (start the page on this machine) and `add_serve_command` (``cogview2 serve``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..loading import DTYPE_NAMES, WEIGHTS_ENV, load_pipeline, parse_dtype, resolve_weights
from ..pipeline import CogView2Pipeline
from .app import build_app, page_theme, require_gradio
from .config import LOOPBACK_HOSTS, WebConfig

DEFAULT_PORT = 7860


def pipeline_factory(
    weights: str | os.PathLike[str] | None = None,
    *,
    tiny: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> Callable[[], CogView2Pipeline]:
    """A function loading the pipeline (`cogview2.loading.load_pipeline`); the folder is
    checked now, the weights load on call."""
    folder = None if tiny else resolve_weights(weights)
    return lambda: load_pipeline(folder, tiny=tiny, device=device, dtype=dtype)


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    weights: str | os.PathLike[str] | None = None,
    *,
    pipeline: CogView2Pipeline | None = None,
    tiny: bool = False,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    config: WebConfig | None = None,
    block: bool = True,
    quiet: bool = False,
) -> tuple[Any, str]:
    """Start the page on ``http://host:port`` (this machine only).

    The pipeline is loaded before the server starts, so a missing or broken weights folder is
    reported at once instead of on the first click.

    Args:
        host: A loopback address (127.0.0.1, localhost or ::1); the page has no login.
        port: TCP port.
        weights: Pipeline folder; default ``$COGVIEW2_WEIGHTS``, then the demo weights.
        pipeline: An already-built pipeline (then ``weights``/``tiny``/``device`` are unused).
        tiny: Use the tiny random-weight pipeline (tries the page without weights).
        device: Torch device of the pipeline.
        dtype: Weight dtype (None: as stored).
        config: Page limits and defaults.
        block: Serve until interrupted (True), or return at once with the server running in a
            background thread (False; stop it with ``app.close()``).
        quiet: Do not print the URL.

    Returns:
        ``(app, url)``: the ``gradio.Blocks`` and the local URL (after the server stopped when
        ``block`` is True).

    Raises:
        ValueError: ``host`` is not a loopback address, or ``port`` is out of range.
        FileNotFoundError: no weights folder (the message says what to pass).
        ImportError: Gradio is not installed (the message gives the pip command).
    """
    if host not in LOOPBACK_HOSTS:
        raise ValueError(
            f"host {host!r} is not a loopback address; the page has no login, so it binds only "
            f"to {sorted(LOOPBACK_HOSTS)} (reach it from elsewhere through an SSH tunnel)"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an int in [1, 65535], got {port!r}")
    require_gradio()
    if pipeline is None:
        pipeline = pipeline_factory(weights, tiny=tiny, device=device, dtype=dtype)()
    cfg = config or WebConfig()
    app = build_app(pipeline, cfg)
    _, url, _ = app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        prevent_thread_lock=not block,
        quiet=quiet,
        show_error=False,
        max_file_size=cfg.max_upload_bytes,
        ssr_mode=False,
        mcp_server=False,
        footer_links=[],
        theme=page_theme(),
    )
    return app, url


def _run_serve(args: argparse.Namespace) -> int:
    try:
        require_gradio()
    except ImportError as err:
        print(f"cogview2 serve: error: {err}", file=sys.stderr)
        return 2
    serve(
        args.host,
        args.port,
        args.weights,
        tiny=args.tiny,
        device=args.device,
        dtype=parse_dtype(args.dtype),
        config=WebConfig(max_images=args.max_images, default_num_images=min(2, args.max_images)),
    )
    return 0


def add_serve_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``cogview2 serve [--weights DIR] [--host H] [--port P] ...``.

    The command's ``func(args) -> int`` starts the page and serves until interrupted; a missing
    weights folder raises FileNotFoundError and a missing Gradio ImportError (message given).
    """
    cmd = subparsers.add_parser(
        "serve",
        help="start the web page on this machine (needs cogview2[web])",
        description="Start a local Gradio page: text to image, completion and captioning.",
    )
    cmd.add_argument(
        "--weights",
        type=Path,
        default=None,
        help=f"pipeline folder (default ${WEIGHTS_ENV} or the demo weights)",
    )
    cmd.add_argument("--tiny", action="store_true", help="tiny random-weight pipeline (a demo)")
    cmd.add_argument("--host", default="127.0.0.1", choices=sorted(LOOPBACK_HOSTS))
    cmd.add_argument("--port", type=int, default=DEFAULT_PORT)
    cmd.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    cmd.add_argument("--dtype", default=None, choices=sorted(DTYPE_NAMES), help="weight dtype")
    cmd.add_argument("--max-images", type=int, default=WebConfig.max_images)
    cmd.set_defaults(func=_run_serve)
    return cmd
