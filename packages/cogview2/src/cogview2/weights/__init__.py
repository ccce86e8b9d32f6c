"""Weights shipped inside the package."""

from pathlib import Path

DEMO_WEIGHTS = Path(__file__).parent / "demo"
"""The small emoji demo weights (18 MB, fp16; docs/training.md): a `CogView2Pipeline` folder,
``CogView2Pipeline.from_pretrained(DEMO_WEIGHTS)`` or ``from_pretrained("demo")``."""

__all__ = ["DEMO_WEIGHTS"]
