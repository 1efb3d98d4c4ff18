"""Sampling and evaluation helpers shared by the language-model chapters."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.training import mean_nll, sample_sequences, sample_words

V = 5


def bigram_logits(table: torch.Tensor):
    return lambda ctx: table[ctx[:, -1]]


def test_sampling_is_reproducible_and_seed_dependent() -> None:
    table = torch.randn(V, V)
    a = sample_sequences(bigram_logits(table), 2, 50, torch.Generator().manual_seed(3))
    b = sample_sequences(bigram_logits(table), 2, 50, torch.Generator().manual_seed(3))
    c = sample_sequences(bigram_logits(table), 2, 50, torch.Generator().manual_seed(4))
    assert a == b and a != c
    assert all(0 not in s and len(s) <= 50 for s in a)


def test_sampling_follows_the_model() -> None:
    # 0 -> 1 always, 1 -> 2 always, 2 -> 0 (end): every sample is [1, 2]
    table = torch.full((V, V), -1e9)
    table[0, 1] = table[1, 2] = table[2, 0] = 0.0
    assert sample_sequences(bigram_logits(table), 3, 7, torch.Generator().manual_seed(0)) == [[1, 2]] * 7
    words = sample_words(bigram_logits(table), 3, 2, seed=0, itos=[".", "a", "b", "c", "d"])
    assert words == ["ab", "ab"]


def test_max_len_and_errors() -> None:
    table = torch.zeros(V, V)
    table[:, 0] = -1e9  # never ends
    seqs = sample_sequences(bigram_logits(table), 1, 4, torch.Generator().manual_seed(0), max_len=6)
    assert all(len(s) == 6 for s in seqs)
    with pytest.raises(ValueError, match="temperature must be positive, got 0"):
        sample_sequences(bigram_logits(table), 1, 4, torch.Generator(), temperature=0)


def test_mean_nll_matches_cross_entropy_in_chunks() -> None:
    table = torch.randn(V, V)
    X = torch.randint(0, V, (1001, 3))
    Y = torch.randint(0, V, (1001,))
    ref = F.cross_entropy(table[X[:, -1]].double(), Y).item()
    assert math.isclose(mean_nll(bigram_logits(table), X, Y, batch_size=100), ref, rel_tol=1e-6)
    with pytest.raises(ValueError, match="X has 1001 examples but Y has 3"):
        mean_nll(bigram_logits(table), X, Y[:3])
