"""Cluster sampling over VQ codebooks (CogView2 sec. 4.1) and the usual logits warpers, vectorised and reproducible."""

from importlib.metadata import version as _version

__version__ = _version("cluster-sampling")

__all__ = ["__version__"]
