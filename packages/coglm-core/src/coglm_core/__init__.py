"""The CogLM transformer: sandwich-LN blocks, region attention masks (CogView2 eq. 1), loss (eq. 2), masking strategies, cached generation, SAT checkpoints."""

from importlib.metadata import version as _version

from ._atomic import atomic_path, atomic_write_text, save_safetensors
from .attention import MASKED_SCORE, AttentionFn, KVCache, MaskedAttention, sat_attention
from .config import CogLMConfig
from .data import TokenDataset, write_token_file
from .generation import Guidance, Sampler, generate, multinomial_sampler
from .infilling import InfillingPlan, infill, infilling_plan, released_region_cells
from .layers import CogLMLayer, LayerNorm, SelfAttention
from .losses import coglm_loss, masked_token_losses, modality_losses, next_token_labels
from .masks import (
    Region,
    RegionMask,
    coglm_attention_mask,
    completion_mask,
    inverse_prompt_mask,
    text_image_generation_mask,
    text_upweighting_bias,
)
from .positions import image_position_ids, inverse_prompt_position_ids, text_image_position_ids
from .pretrained import from_pretrained, save_pretrained
from .quantization import Int8Linear, int8_weight_bytes, quantize_linears_int8, quantize_rows
from .sat_checkpoint import (
    SatCheckpoint,
    check_state_dict,
    expected_shapes,
    load_sat_checkpoint,
    write_sat_checkpoint,
)
from .strategies import (
    TrainingExample,
    collate,
    image_text_understanding_example,
    pretraining_example,
    prompted_infilling_example,
    text_image_generation_example,
    text_only_example,
)
from .trainer import train
from .training import TrainConfig, init_distributed_from_env, train_step
from .transformer import CogLM, CogLMOutput

__version__ = _version("coglm-core")

__all__ = [
    "MASKED_SCORE",
    "AttentionFn",
    "CogLM",
    "CogLMConfig",
    "CogLMLayer",
    "CogLMOutput",
    "Guidance",
    "InfillingPlan",
    "Int8Linear",
    "KVCache",
    "LayerNorm",
    "MaskedAttention",
    "Region",
    "RegionMask",
    "Sampler",
    "SatCheckpoint",
    "SelfAttention",
    "TokenDataset",
    "TrainConfig",
    "TrainingExample",
    "__version__",
    "atomic_path",
    "atomic_write_text",
    "check_state_dict",
    "coglm_attention_mask",
    "coglm_loss",
    "collate",
    "completion_mask",
    "expected_shapes",
    "from_pretrained",
    "generate",
    "image_position_ids",
    "image_text_understanding_example",
    "infill",
    "infilling_plan",
    "init_distributed_from_env",
    "int8_weight_bytes",
    "inverse_prompt_mask",
    "inverse_prompt_position_ids",
    "load_sat_checkpoint",
    "masked_token_losses",
    "modality_losses",
    "multinomial_sampler",
    "next_token_labels",
    "pretraining_example",
    "prompted_infilling_example",
    "quantize_linears_int8",
    "quantize_rows",
    "released_region_cells",
    "sat_attention",
    "save_pretrained",
    "save_safetensors",
    "text_image_generation_example",
    "text_image_generation_mask",
    "text_image_position_ids",
    "text_only_example",
    "text_upweighting_bias",
    "train",
    "train_step",
    "write_sat_checkpoint",
    "write_token_file",
]
