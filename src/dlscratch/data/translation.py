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

from ..tokenizers.vocab import SeqVocab, WordVocab
from .toy_seq import Seq2SeqTensors, encode_pairs

__all__ = [
    "ONES",
    "TENS",
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
    return encode_pairs(pairs, src_vocab, tgt_vocab)
