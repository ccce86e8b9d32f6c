"""Overhead of the web page: one request through Gradio (queue, HTTP, PNG) vs the direct call.

    python packages/cogview2/bench/web_overhead.py [--repeats 5] [--num-images 1]

Uses the tiny random-weight pipeline on CPU, so the figure is the page's own cost (queueing,
serialisation, PNG encoding and transfer), not the model's. Needs ``cogview2[web]``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

from cogview2 import build_tiny_pipeline
from cogview2.web import PageHandlers, serve


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-images", type=int, default=1)
    args = parser.parse_args()
    from gradio_client import Client

    pipe = build_tiny_pipeline(seed=0)
    handlers = PageHandlers(pipe)
    app, url = serve(port=_free_port(), pipeline=pipe, block=False, quiet=True)
    try:
        client = Client(url, verbose=False)
        request = ("a red apple", "mainbody", args.num_images, 7, False)
        handlers.generate(*request)  # warm-up
        client.predict(*request, api_name="/generate")
        direct, page = [], []
        for _ in range(args.repeats):  # interleaved, so load changes hit both alike
            t = time.perf_counter()
            handlers.generate(*request)
            direct.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.predict(*request, api_name="/generate")
            page.append(time.perf_counter() - t)
    finally:
        app.close()
    d, p = statistics.median(direct), statistics.median(page)
    print(f"images per request: {args.num_images}, repeats: {args.repeats}")
    print(f"direct PageHandlers.generate: median {d * 1e3:.0f} ms")
    print(f"through the page (gradio_client): median {p * 1e3:.0f} ms")
    print(f"page overhead: {(p - d) * 1e3:.0f} ms per request ({p / d:.2f}x the direct call)")


if __name__ == "__main__":
    main()
