"""The evaluation helper shared by the language-model chapters."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.training import mean_nll

V = 5


def bigram_logits(table: torch.Tensor):
    return lambda ctx: table[ctx[:, -1]]


def test_mean_nll_matches_cross_entropy_in_chunks() -> None:
    table = torch.randn(V, V)
    X = torch.randint(0, V, (1001, 3))
    Y = torch.randint(0, V, (1001,))
    ref = F.cross_entropy(table[X[:, -1]].double(), Y).item()
    assert math.isclose(mean_nll(bigram_logits(table), X, Y, batch_size=100), ref, rel_tol=1e-6)
    with pytest.raises(ValueError, match="X has 1001 examples but Y has 3"):
        mean_nll(bigram_logits(table), X, Y[:3])
