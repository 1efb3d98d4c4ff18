r"""Layers built by hand: activations, attention (and, in later chapters, norms, positional
encodings, feed-forward blocks, ...). Layers import only torch."""

from .activations import log_softmax, softmax
from .attention import (
    causal_mask,
    merge_heads,
    multi_head_attention,
    multi_head_attention_loop,
    scaled_dot_product_attention,
    split_heads,
)

__all__ = [
    "softmax",
    "log_softmax",
    "causal_mask",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "multi_head_attention_loop",
    "multi_head_attention",
]
