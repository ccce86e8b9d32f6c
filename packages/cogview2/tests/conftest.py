"""Shared fixtures: one tiny random-weight pipeline per test session (built once, ~5 s)."""

from __future__ import annotations

import pytest

from cogview2.tiny import build_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_pipe():
    return build_tiny_pipeline(seed=0)
