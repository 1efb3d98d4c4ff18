r"""Attention: pure functions (chapter 11) and, in sibling modules, the ``nn.Module`` classes."""

from .functional import (
    causal_mask,
    merge_heads,
    multi_head_attention,
    multi_head_attention_loop,
    scaled_dot_product_attention,
    split_heads,
)
from .modules import FastMultiHeadAttention, MultiHeadAttention

__all__ = [
    "causal_mask",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "multi_head_attention_loop",
    "multi_head_attention",
    "MultiHeadAttention",
    "FastMultiHeadAttention",
]
from .kv_cache import KVCache, offset_causal_mask

__all__ += ["KVCache", "offset_causal_mask"]
