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
from .kv_cache import KVCache, offset_causal_mask
from .modules import MultiHeadAttention, start_kv_caches, stop_kv_caches
from .qk_norm import QKNormAttention

__all__ = [
    "causal_mask",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "multi_head_attention_loop",
    "multi_head_attention",
    "offset_causal_mask",
    "KVCache",
    "PositionHook",
    "repeat_kv",
    "attend_written",
    "attend_sdpa",
    "ATTEND",
    "MultiHeadAttention",
    "start_kv_caches",
    "stop_kv_caches",
    "QKNormAttention",
]
