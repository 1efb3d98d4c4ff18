r"""Attention: pure functions (chapter 11), the one attention module (chapter 12 on), the KV cache."""

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
]
