"""Triton kernels (imported lazily: triton is the optional extra ``localattn[triton]``)."""
