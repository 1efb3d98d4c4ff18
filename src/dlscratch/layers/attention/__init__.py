r"""Attention: pure functions (chapter 11), the one attention module (chapter 12 on), the KV cache, efficient attention (chapter 24)."""

from .functional import (
    causal_mask,
    merge_heads,
    multi_head_attention,
    multi_head_attention_loop,
    scaled_dot_product_attention,
    split_heads,
)
from .attend import ATTEND, PositionHook, attend_sdpa, attend_written, repeat_kv
from .banded import attend_banded, band_block_mask
from .kv_cache import KVCache, RollingKVCache, kv_cache_bytes, offset_causal_mask
from .modules import MultiHeadAttention, start_kv_caches, stop_kv_caches
from .receptive_field import measure_receptive_field
from .qk_norm import QKNormAttention
from .flash import FlashAttention, check_tiles, flash_attention, flash_backward, flash_forward, online_softmax
from .linear import elu_feature_map, linear_attention, linear_attention_step
from .performer import favor_features, performer_attention, random_projection
from .sparse_patterns import fixed_pattern, longformer_mask, pattern_density, strided_pattern
from .lsh import collision_probability, lsh_attention, lsh_hash, lsh_mask, random_rotations

__all__ = [
    "causal_mask",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "multi_head_attention_loop",
    "multi_head_attention",
    "offset_causal_mask",
    "KVCache",
    "RollingKVCache",
    "kv_cache_bytes",
    "band_block_mask",
    "attend_banded",
    "measure_receptive_field",
    "PositionHook",
    "repeat_kv",
    "attend_written",
    "attend_sdpa",
    "ATTEND",
    "MultiHeadAttention",
    "start_kv_caches",
    "stop_kv_caches",
    "QKNormAttention",
    "online_softmax",
    "check_tiles",
    "flash_forward",
    "flash_backward",
    "FlashAttention",
    "flash_attention",
    "elu_feature_map",
    "linear_attention",
    "linear_attention_step",
    "random_projection",
    "favor_features",
    "performer_attention",
    "longformer_mask",
    "strided_pattern",
    "fixed_pattern",
    "pattern_density",
    "random_rotations",
    "lsh_hash",
    "collision_probability",
    "lsh_mask",
    "lsh_attention",
]
