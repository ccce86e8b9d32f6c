"""Backends of ``local_attention_2d``: ``reference`` (PyTorch), ``triton`` (CUDA), ``flex``."""
