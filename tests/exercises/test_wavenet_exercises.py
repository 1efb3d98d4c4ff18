"""Checkers of the chapter 5 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.wavenet import EX_BLOCK, EX_EMBD, EX_HIDDEN


@pytest.fixture(autouse=True)
def _only_this_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("wavenet",))


# ---- reference solutions
LEVELS = 4  # log2(16)
PARAMS = 27 * EX_EMBD + 2 * EX_EMBD * EX_HIDDEN + (LEVELS - 1) * 2 * EX_HIDDEN * EX_HIDDEN + LEVELS * 2 * EX_HIDDEN + EX_HIDDEN * 27 + 27


def flatten_solution(x, n):
    B, T, C = x.shape
    x = x.reshape(B, T // n, C * n)
    return x.squeeze(1) if x.shape[1] == 1 else x


def flatten_no_squeeze(x, n):
    B, T, C = x.shape
    return x.reshape(B, T // n, C * n)


def flatten_view(x, n):
    B, T, C = x.shape
    x = x.view(B, T // n, C * n)
    return x.squeeze(1) if x.shape[1] == 1 else x


def flatten_interleaved(x, n):
    B, T, C = x.shape
    x = x.reshape(B, n, T // n, C).transpose(1, 2).reshape(B, T // n, C * n)  # pairs positions t and t + T/n
    return x.squeeze(1) if x.shape[1] == 1 else x


def bn3d_solution(x, gamma, beta, eps):  # x: (N, C, L)
    var, mean = torch.var_mean(x, (0, 2), keepdim=True, correction=0)
    return gamma[:, None] * (x - mean) / torch.sqrt(var + eps) + beta[:, None]


def bn3d_dim0(x, gamma, beta, eps):
    var, mean = torch.var_mean(x, 0, keepdim=True, correction=0)
    return gamma[:, None] * (x - mean) / torch.sqrt(var + eps) + beta[:, None]


def bn3d_unbiased(x, gamma, beta, eps):
    var, mean = torch.var_mean(x, (0, 2), keepdim=True, correction=1)
    return gamma[:, None] * (x - mean) / torch.sqrt(var + eps) + beta[:, None]


def todo(*args):
    raise NotImplementedError


CASES = [
    ("wavenet.param_count", PARAMS, [PARAMS + LEVELS * EX_HIDDEN, PARAMS - LEVELS * 2 * EX_HIDDEN, PARAMS + 1, float(PARAMS + 1), "28393"]),
    ("wavenet.flatten_consecutive", flatten_solution, [flatten_no_squeeze, flatten_view, flatten_interleaved, 3]),
    ("wavenet.receptive_field", (4, 5, 6, 7), [(2, 3), (0, 1, 2, 3), (3, 4, 5, 6), 7, (4, 5, 6, 7, 0)]),
    ("wavenet.batchnorm_3d", bn3d_solution, [bn3d_dim0, bn3d_unbiased, lambda x, g, b, e: x]),
]


@pytest.mark.parametrize(("name", "solution", "wrong"), CASES, ids=[c[0] for c in CASES])
def test_checker(name, solution, wrong) -> None:
    assert grade(name, solution).correct is True
    for bad in wrong:
        verdict = grade(name, bad)
        assert verdict.correct is False, (bad, verdict)
        assert len(verdict.message) > 20
    assert grade(name, ...).correct is None


def test_param_count_constant_matches_the_sizes() -> None:
    assert (EX_BLOCK, EX_EMBD, EX_HIDDEN, PARAMS) == (16, 10, 64, 28393)


@pytest.mark.parametrize("name", ["wavenet.flatten_consecutive", "wavenet.batchnorm_3d"])
def test_unfinished_function_is_not_attempted(name: str) -> None:
    assert grade(name, todo).correct is None
