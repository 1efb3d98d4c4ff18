r"""Tokenizers and vocabularies written from scratch, all behind one protocol (:class:`Tokenizer`).

Fixed vocabularies (chapters 3, 10, 16), characters and byte-level BPE (chapter 14).
"""

from .base import END_OF_TEXT, Tokenizer
from .bpe import GPT2_SPLIT_PATTERN, ByteBPETokenizer, merge_pair, pair_counts, train_merges
from .char import CharTokenizer
from .vocab import CharVocab, SeqVocab, SpecialTokenVocab, Vocab, WordVocab

__all__ = [
    "Tokenizer",
    "END_OF_TEXT",
    "Vocab",
    "CharVocab",
    "SpecialTokenVocab",
    "SeqVocab",
    "WordVocab",
    "CharTokenizer",
    "ByteBPETokenizer",
    "GPT2_SPLIT_PATTERN",
    "pair_counts",
    "merge_pair",
    "train_merges",
]
