"""Unified image / Chinese / English tokenizer: sentencepiece text and VQ-VAE image codes in one id space."""

from importlib.metadata import version as _version

__version__ = _version("icetk")

__all__ = ["__version__"]
