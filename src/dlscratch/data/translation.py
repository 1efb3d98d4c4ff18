r"""A generated toy translation task: English number words to digits.

Each example maps a number from 0 to 9999 written in words to its decimal digits::

    "three hundred twelve"                 -> "312"
    "four thousand five"                   -> "4005"
    "seven thousand seven hundred seventy seven" -> "7777"

The source is a sequence of *words* (a 30-word vocabulary, at most 6 words), the target a sequence
of *characters* (the ten digits, at most 4). The split is fixed by a seed and held out by
number: no test number appears in the training set. Both vocabularies put ``<pad>`` 0,
``<bos>`` 1 and ``<eos>`` 2 first. Introduced in chapter 16 (*The full encoder-decoder
Transformer*); the padded tensors are chapter 10's :class:`Seq2SeqTensors`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from .toy_seq import BOS, EOS, PAD, Seq2SeqTensors, SeqVocab, SpecialTokenVocab

__all__ = [
    "ONES",
    "TENS",
    "WordVocab",
    "NUMBER_WORDS",
    "DIGIT_VOCAB",
    "number_to_words",
    "TranslationSplit",
    "number_split",
    "encode_translation",
]

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()  # 0..19
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()  # index = tens digit
MAX_NUMBER = 9999


@dataclass(frozen=True)
class WordVocab(SpecialTokenVocab):
    r"""Whole words with ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2 in front (words get ids ``3 ..``)."""

    words: tuple[str, ...]  # ordinary words, in index order
    kind: ClassVar[str] = "words"
    sep: ClassVar[str] = " "

    @property
    def tokens(self) -> tuple[str, ...]:
        r"""The ordinary words."""
        return self.words

    def split(self, text: str) -> list[str]:
        r"""The space-separated words of ``text``."""
        return text.split()


NUMBER_WORDS = WordVocab(tuple(ONES) + tuple(TENS[2:]) + ("hundred", "thousand"))
DIGIT_VOCAB = SeqVocab("0123456789")


def _below_hundred(n: int) -> list[str]:
    if n < 20:
        return [ONES[n]]
    return [TENS[n // 10]] + ([ONES[n % 10]] if n % 10 else [])


def number_to_words(n: int) -> str:
    r"""``n`` in English words, without "and" or hyphens: ``1234`` → "one thousand two hundred thirty four".

    Raises:
        ValueError: if ``n`` is not an integer in ``[0, 9999]``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"n must be an integer in [0, {MAX_NUMBER}], got {n!r}")
    if n == 0:
        return "zero"
    words: list[str] = []
    thousands, hundreds, rest = n // 1000, n // 100 % 10, n % 100
    if thousands:
        words += [ONES[thousands], "thousand"]
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest:
        words += _below_hundred(rest)
    return " ".join(words)


@dataclass(frozen=True)
class TranslationSplit:
    r"""Train / test (words, digits) pairs and the two vocabularies."""

    train: list[tuple[str, str]]
    test: list[tuple[str, str]]
    src_vocab: WordVocab
    tgt_vocab: SeqVocab


def number_split(n_test: int = 1000, seed: int = 0) -> TranslationSplit:
    r"""Shuffle the numbers 0..9999 with ``random.Random(seed)``; the first ``n_test`` are held out.

    Every other number is a training pair, so train and test are disjoint and together cover
    the whole range.

    Raises:
        ValueError: if ``n_test`` is not in ``[1, 9999]``.
    """
    if isinstance(n_test, bool) or not isinstance(n_test, int) or not 1 <= n_test <= MAX_NUMBER:
        raise ValueError(f"n_test must be an integer in [1, {MAX_NUMBER}], got {n_test!r}")
    numbers = list(range(MAX_NUMBER + 1))
    random.Random(seed).shuffle(numbers)
    pairs = [(number_to_words(n), str(n)) for n in numbers]
    return TranslationSplit(pairs[n_test:], pairs[:n_test], NUMBER_WORDS, DIGIT_VOCAB)


def encode_translation(
    pairs: Sequence[tuple[str, str]], src_vocab: WordVocab = NUMBER_WORDS, tgt_vocab: SeqVocab = DIGIT_VOCAB
) -> Seq2SeqTensors:
    r"""Encode and pad pairs: sources word by word, targets character by character.

    ``tgt_in`` is ``<bos>`` + digits and ``tgt_out`` is digits + ``<eos>``, both padded with
    ``<pad>`` (see :class:`Seq2SeqTensors`).

    Raises:
        ValueError: on an empty list, an empty source, or an unknown word or character.
    """
    if not pairs:
        raise ValueError("no pairs to encode")
    srcs = [src_vocab.encode(s) for s, _ in pairs]
    tgts = [tgt_vocab.encode(t) for _, t in pairs]
    if any(len(s) == 0 for s in srcs):
        raise ValueError("every source needs at least one word")
    N, S, T = len(pairs), max(map(len, srcs)), max(map(len, tgts)) + 1
    src = torch.full((N, S), PAD, dtype=torch.long)
    tgt_in = torch.full((N, T), PAD, dtype=torch.long)
    tgt_out = torch.full((N, T), PAD, dtype=torch.long)
    for n, (s, t) in enumerate(zip(srcs, tgts)):
        src[n, : len(s)] = torch.tensor(s)
        tgt_in[n, : len(t) + 1] = torch.tensor([BOS, *t])
        tgt_out[n, : len(t) + 1] = torch.tensor([*t, EOS])
    src_len = torch.tensor([len(s) for s in srcs], dtype=torch.long)
    return Seq2SeqTensors(src, src_len, tgt_in, tgt_out)
