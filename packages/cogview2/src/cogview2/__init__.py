"""CogView2 hierarchical text-to-image: stage 1, direct super-resolution, LoPAR iterative super-resolution, completion, captioning, CLI and API."""

from importlib.metadata import version as _version

__version__ = _version("cogview2")

__all__ = ["__version__"]
