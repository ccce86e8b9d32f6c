"""The `cogview2 serve` web page: text to image, completion and captioning in the browser.

Needs the optional extra ``pip install 'cogview2[web]'`` (Gradio), imported only when the page
is built; the input checks in `cogview2.web.inputs` work without it.
"""

from .app import build_app
from .config import WebConfig
from .handlers import PageHandlers
from .server import add_serve_command, pipeline_factory, resolve_weights, serve

__all__ = [
    "PageHandlers",
    "WebConfig",
    "add_serve_command",
    "build_app",
    "pipeline_factory",
    "resolve_weights",
    "serve",
]
