r"""The names corpus as a character-level language-modelling dataset.

Every chapter of Part II uses the same vocabulary, the same 80/10/10 split of the 32,033 names
and the same way of cutting names into (context, next character) examples, so their losses
compare directly:

* vocabulary: :class:`~dlscratch.tokenizers.CharVocab`, ``.`` (index 0, marks both the start and the end of a name) then ``a``-``z``;
* split: the names shuffled by ``random.Random(seed)`` (``seed=42``), first 80 % train, next 10 %
  validation, last 10 % test;
* examples: each name ``emma`` with a context of ``block_size`` characters yields ``...`` → ``e``,
  ``..e`` → ``m``, ... , ``mma`` → ``.``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..tokenizers.vocab import CharVocab
from .text import load_names

__all__ = ["NamesSplit", "names_split", "split_words", "build_examples"]


@dataclass(frozen=True)
class NamesSplit:
    r"""Train / validation / test lists of names (disjoint, deterministic)."""

    train: list[str]  # 80 %
    val: list[str]  # 10 %
    test: list[str]  # 10 %


def split_words(words: Sequence[str], seed: int = 42, fractions: tuple[float, float] = (0.8, 0.9)) -> NamesSplit:
    r"""Shuffle ``words`` with ``random.Random(seed)`` and cut at the two ``fractions``.

    Raises:
        ValueError: if the fractions are not increasing within (0, 1).
    """
    lo, hi = fractions
    if not 0.0 < lo < hi < 1.0:
        raise ValueError(f"fractions must satisfy 0 < train < train+val < 1, got {fractions}")
    shuffled = list(words)
    random.Random(seed).shuffle(shuffled)
    n1, n2 = int(lo * len(shuffled)), int(hi * len(shuffled))
    return NamesSplit(shuffled[:n1], shuffled[n1:n2], shuffled[n2:])


def names_split(seed: int = 42) -> NamesSplit:
    r"""The book's split of ``names.txt``: 25,626 / 3,203 / 3,204 names."""
    return split_words(load_names(), seed)


def build_examples(words: Sequence[str], block_size: int, vocab: CharVocab | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Cut words into (context, next character) examples.

    A word of length :math:`n` gives :math:`n + 1` examples: the context starts as
    ``block_size`` boundary tokens and slides one character at a time; the last target is the
    boundary token.

    Args:
        words: the words.
        block_size: the context length (at least 1).
        vocab: the vocabulary; the names vocabulary when omitted.

    Returns:
        ``(X, Y)``: ``X`` of shape ``(N, block_size)`` and ``Y`` of shape ``(N,)``, ``torch.long``.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    vocab = vocab or CharVocab()
    xs: list[list[int]] = []
    ys: list[int] = []
    for word in words:
        context = [vocab.boundary_id] * block_size
        for ix in vocab.encode_word(word)[1:]:
            xs.append(context)
            ys.append(ix)
            context = [*context[1:], ix]
    return torch.tensor(xs, dtype=torch.long).view(-1, block_size), torch.tensor(ys, dtype=torch.long)
