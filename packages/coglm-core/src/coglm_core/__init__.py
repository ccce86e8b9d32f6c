"""The CogLM transformer: sandwich-LN blocks, region attention masks (CogView2 eq. 1), loss (eq. 2), masking strategies, cached generation, SAT checkpoints."""

from importlib.metadata import version as _version

__version__ = _version("coglm-core")

__all__ = ["__version__"]
