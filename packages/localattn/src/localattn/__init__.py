"""2D local attention with CogView2 semantics: windows, raster-causal, cross-resolution, global tokens; PyTorch, FlexAttention and fused Triton backends."""

from importlib.metadata import version as _version

__version__ = _version("localattn")

__all__ = ["__version__"]
