"""The names dataset: the shared split, and (context, next character) examples."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dlscratch.data import build_examples, names_split, split_words

WORDS = [f"w{i:04d}" for i in range(1000)]


def test_split_is_deterministic_disjoint_and_complete() -> None:
    a, b = split_words(WORDS, seed=42), split_words(WORDS, seed=42)
    assert a == b
    assert (len(a.train), len(a.val), len(a.test)) == (800, 100, 100)
    assert sorted(a.train + a.val + a.test) == WORDS
    assert split_words(WORDS, seed=1).train != a.train


@pytest.mark.parametrize("fractions", [(0.9, 0.8), (0.0, 0.5), (0.5, 1.0)])
def test_split_bad_fractions(fractions: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match=str(fractions).replace("(", r"\(").replace(")", r"\)")):
        split_words(WORDS, fractions=fractions)


def test_build_examples_by_hand() -> None:
    X, Y = build_examples(["emma", "al"], block_size=3)
    e, m, a, l = 5, 13, 1, 12
    assert X.tolist() == [[0, 0, 0], [0, 0, e], [0, e, m], [e, m, m], [m, m, a], [0, 0, 0], [0, 0, a], [0, a, l]]
    assert Y.tolist() == [e, m, m, a, 0, a, l, 0]
    assert X.dtype == Y.dtype == torch.long
    assert build_examples([], block_size=2)[0].shape == (0, 2)
    with pytest.raises(ValueError, match="block_size must be at least 1, got 0"):
        build_examples(["a"], block_size=0)


def test_real_split_sizes() -> None:
    mirror = os.environ.get("DLSCRATCH_DATA")
    if not mirror or not Path(mirror, "names.txt").is_file():
        pytest.skip("no local data mirror (DLSCRATCH_DATA) on this machine")
    s = names_split()
    assert (len(s.train), len(s.val), len(s.test)) == (25_626, 3_203, 3_204)
    # the split partitions the file's lines (names.txt repeats some names, e.g. for boys and
    # girls, so a name *string* may occur in two parts, as in the reference split)
    from collections import Counter

    from dlscratch.data import load_names

    assert Counter(s.train) + Counter(s.val) + Counter(s.test) == Counter(load_names())
    # the makemore convention: 228,146 bigrams in the whole file
    assert sum(len(w) + 1 for w in s.train + s.val + s.test) == 228_146
