"""`WebConfig`: limits and defaults of the `cogview2 serve` page."""

from __future__ import annotations

from dataclasses import dataclass

LOOPBACK_HOSTS: frozenset[str] = frozenset({"127.0.0.1", "localhost", "::1"})
"""Hosts `serve` binds to; the page has no authentication, so it stays on this machine."""


@dataclass(frozen=True)
class WebConfig:
    """Settings of the web page (not of the pipeline).

    Attributes:
        title: Browser tab and page title.
        default_style: Style selected when the page opens (a name of `cogview2.RECIPES`);
            None: the pipeline's ``config.default_style``.
        default_num_images: Images per request when the page opens.
        max_images: Largest "number of images" a request may ask for.
        max_seed: Seeds are integers in ``[0, max_seed]``; random seeds are drawn from there.
        max_upload_side: Longest side (pixels) of an uploaded image; larger ones are refused.
        max_upload_bytes: Largest uploaded file (bytes); also handed to Gradio's upload limit.
        queue_size: Requests waiting at most; further clicks are refused with a message.
        concurrency_limit: Requests run at once (1: one model, requests served in order).
    """

    title: str = "CogView2"
    default_style: str | None = None
    default_num_images: int = 2
    max_images: int = 8
    max_seed: int = 2**31 - 1
    max_upload_side: int = 4096
    max_upload_bytes: int = 20 * 2**20
    queue_size: int = 16
    concurrency_limit: int = 1

    def __post_init__(self) -> None:
        for name in (
            "default_num_images",
            "max_images",
            "max_seed",
            "max_upload_side",
            "max_upload_bytes",
            "queue_size",
            "concurrency_limit",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"WebConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.default_num_images > self.max_images:
            raise ValueError(
                f"WebConfig.default_num_images ({self.default_num_images}) must be <= "
                f"max_images ({self.max_images})"
            )
