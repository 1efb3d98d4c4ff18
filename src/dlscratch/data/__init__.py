r"""Data: download with checksum and cache, the text corpora, batching."""

from .digits import DigitsSplit, load_digits_split
from .download import CACHE_ENV, DATA_ENV, REGISTRY, DataFile, cache_dir, fetch, sha256_of
from .names import CharVocab, NamesSplit, build_examples, names_split, split_words
from .text import load_names, load_shakespeare

__all__ = [
    "DigitsSplit",
    "load_digits_split",
    "CACHE_ENV",
    "DATA_ENV",
    "REGISTRY",
    "DataFile",
    "cache_dir",
    "fetch",
    "sha256_of",
    "load_names",
    "CharVocab",
    "NamesSplit",
    "build_examples",
    "names_split",
    "split_words",
    "load_shakespeare",
]
