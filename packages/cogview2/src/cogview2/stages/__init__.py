"""The pipeline stages as functions over models and token tensors."""

from .caption import generate_caption_ids
from .coarse import generate_low_res, stage1_sampler
from .completion import box_grid_mask, validate_box
from .inverse_prompt import caption_scores
from .super_resolution import direct_super_resolution, dsr_sampler, iterative_super_resolution

__all__ = [
    "box_grid_mask",
    "caption_scores",
    "direct_super_resolution",
    "dsr_sampler",
    "generate_caption_ids",
    "generate_low_res",
    "iterative_super_resolution",
    "stage1_sampler",
    "validate_box",
]
