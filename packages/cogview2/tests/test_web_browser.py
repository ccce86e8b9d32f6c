"""End to end in headless Chromium: the page generates, shows the seed, and reports bad input.

Needs ``cogview2[web]``, the ``playwright`` Python package (used only as a driver; no browser
download) and Debian's ``chromium`` (``apt-get install chromium``); skipped otherwise.
The server runs in a background thread of this process on a free loopback port.
"""

from __future__ import annotations

import io
import shutil
import socket

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("gradio", reason="needs the web extra: pip install 'cogview2[web]'")
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the playwright Python package (pip install playwright)"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium) on PATH"
)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 180_000  # one tiny generation takes ~5 s alone, far longer on a loaded 2-core box


WATCH_QUEUE = """() => {
  window.sawQueue = false;
  new MutationObserver(() => {
    if (document.body.innerText.includes("queue:")) window.sawQueue = true;
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
"""Records whether the page ever showed a queue position (it may show for a moment only; a
MutationObserver is not throttled the way a background page's polling is)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_url(tiny_pipe):
    from cogview2.web import serve

    app, url = serve(port=_free_port(), pipeline=tiny_pipe, block=False, quiet=True)
    try:
        yield url
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _gallery_images(page, selector: str) -> list[Image.Image]:
    sources = page.locator(f"{selector} img").evaluate_all("els => els.map(e => e.src)")
    images = []
    for src in dict.fromkeys(sources):  # a selected image may be shown twice
        response = page.request.get(src)
        assert response.ok, src
        images.append(Image.open(io.BytesIO(response.body())).convert("RGB"))
    return images


def test_generate_in_the_browser_and_reproduce_with_the_api(page_url, browser, tiny_pipe):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(page_url, wait_until="domcontentloaded")
    prompt = "a red apple"
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#generate-button").click()
    page.locator("#gallery img").nth(1).wait_for()  # default: 2 images
    images = _gallery_images(page, "#gallery")
    side = tiny_pipe.image_size
    assert len(images) == 2 and all(im.size == (side, side) for im in images)
    assert prompt in page.locator("#gallery").inner_text()  # the prompt under each image

    seed = int(page.locator("#seed input").input_value())
    again = tiny_pipe(
        prompt,
        num_images=2,
        style="mainbody",
        generator=torch.Generator(device=tiny_pipe.device).manual_seed(seed),
        progress=False,
    )
    for shown, expected in zip(images, again.images, strict=True):
        np.testing.assert_array_equal(np.asarray(shown), np.asarray(expected))

    page.locator("#prompt textarea").fill("   ")
    page.locator("#generate-button").click()
    page.get_by_text("Enter a prompt first").first.wait_for()
    assert "Traceback" not in page.content()
    page.close()


def test_two_people_at_once_are_queued_and_both_served(page_url, browser):
    pages = [browser.new_page(), browser.new_page()]
    prompts = ["a red apple", "a small cat"]
    counts = ["8", "1"]  # the first request runs long enough for the second to wait
    for page, prompt, count in zip(pages, prompts, counts, strict=True):
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(page_url, wait_until="domcontentloaded")
        page.locator("#prompt textarea").fill(prompt)
        page.locator("#num-images input[type=number]").fill(count)
        page.locator("#num-images input[type=number]").press("Enter")
    pages[1].evaluate(WATCH_QUEUE)
    for page in pages:
        page.locator("#generate-button").click()
    for page, prompt, count in zip(pages, prompts, counts, strict=True):
        page.locator("#gallery img").nth(int(count) - 1).wait_for()
        assert prompt in page.locator("#gallery").inner_text()
    assert pages[1].evaluate("window.sawQueue") is True  # the second request showed its position
    for page in pages:
        page.close()
