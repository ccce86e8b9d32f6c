"""2D local attention with CogView2 semantics, and neighborhood attention (NATTEN's semantics).

Centred (non-clamped) rectangular windows, raster-causal half windows, cross-resolution key
grids and global tokens in one softmax (``local_attention_2d``); 1D/2D/3D neighborhood attention
with dilation and causal axes (``na1d``/``na2d``/``na3d``); with a fast pure-PyTorch reference backend, fused Triton
kernels for CUDA and a FlexAttention backend. See ``python -m localattn.info`` for the backends.
"""

import warnings
from importlib.metadata import version as _version

with warnings.catch_warnings():
    # torch >= 2.12 warns "Failed to initialize NumPy" on import when numpy is not installed;
    # localattn never uses numpy, so a numpy-free install stays silent. Only the first import
    # of torch warns: a user who imported torch already has seen it (or not) there.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch  # noqa: F401

from localattn.backends.reference import workspace_bytes
from localattn.dispatch import ENV_VAR, get_backend, select_backend, use_backend
from localattn.functional import local_attention_2d, merge_attentions
from localattn.modules import LocalAttention2d
from localattn.neighborhood import na1d, na2d, na3d, neighborhood_attention
from localattn.twoop import similarity_2d, weighting_2d
from localattn.types import KernelSize, WindowSpec

__version__ = _version("localattn")

__all__ = [
    "ENV_VAR",
    "KernelSize",
    "LocalAttention2d",
    "WindowSpec",
    "__version__",
    "get_backend",
    "local_attention_2d",
    "merge_attentions",
    "na1d",
    "na2d",
    "na3d",
    "neighborhood_attention",
    "select_backend",
    "similarity_2d",
    "use_backend",
    "weighting_2d",
    "workspace_bytes",
]
