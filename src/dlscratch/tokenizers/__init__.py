r"""Tokenizers written from scratch: characters and byte-level BPE (chapter 14)."""

from .bpe import GPT2_SPLIT_PATTERN, ByteBPETokenizer, merge_pair, pair_counts, train_merges
from .char import CharTokenizer

__all__ = ["CharTokenizer", "ByteBPETokenizer", "GPT2_SPLIT_PATTERN", "pair_counts", "merge_pair", "train_merges"]
