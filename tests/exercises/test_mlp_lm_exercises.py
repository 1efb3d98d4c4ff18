"""Checkers of the chapter 4 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.mlp_lm import EX_BLOCK, EX_EMBD, EX_HIDDEN, EX_VOCAB


@pytest.fixture(autouse=True)
def _only_this_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("mlp_lm",))


# ---- reference solutions
def bn_backward_solution(dout, x, gamma, eps):
    N = x.shape[0]
    mean, var = x.mean(0), x.var(0, unbiased=False)
    inv_std = (var + eps) ** -0.5
    xhat = (x - mean) * inv_std
    dbeta, dgamma = dout.sum(0), (dout * xhat).sum(0)
    return gamma * inv_std / N * (N * dout - dbeta - xhat * dgamma), dgamma, dbeta


def bn_backward_constant_stats(dout, x, gamma, eps):
    dx, dgamma, dbeta = bn_backward_solution(dout, x, gamma, eps)
    return gamma * (x.var(0, unbiased=False) + eps) ** -0.5 * dout, dgamma, dbeta


def bn_backward_bad_dgamma(dout, x, gamma, eps):
    dx, dgamma, dbeta = bn_backward_solution(dout, x, gamma, eps)
    return dx, dbeta, dbeta


def ce_grad_solution(logits, targets):
    p = torch.softmax(logits, dim=1)
    p[torch.arange(len(targets)), targets] -= 1
    return p / len(targets)


def ce_grad_sum(logits, targets):
    return ce_grad_solution(logits, targets) * len(targets)


def ce_grad_no_onehot(logits, targets):
    return torch.softmax(logits, dim=1) / len(targets)


def todo(*args):
    raise NotImplementedError


FAN_IN = EX_BLOCK * EX_EMBD
PARAMS = EX_VOCAB * EX_EMBD + FAN_IN * EX_HIDDEN + 2 * EX_HIDDEN + EX_HIDDEN * EX_VOCAB + EX_VOCAB

CASES = [
    ("mlp.kaiming_std", (5 / 3) / math.sqrt(FAN_IN), [1 / math.sqrt(FAN_IN), (5 / 3) ** 2 / FAN_IN, 0.5, "0.24"]),
    ("mlp.param_count", PARAMS, [PARAMS + EX_HIDDEN, PARAMS - 2 * EX_HIDDEN, PARAMS + 1, PARAMS - EX_VOCAB * EX_EMBD]),
    ("mlp.bn_backward", bn_backward_solution, [bn_backward_constant_stats, bn_backward_bad_dgamma, lambda *a: None, 3.0]),
    ("mlp.ce_grad", ce_grad_solution, [ce_grad_sum, ce_grad_no_onehot, lambda l, t: torch.zeros(3)]),
]


@pytest.mark.parametrize(("name", "solution", "wrong"), CASES, ids=[c[0] for c in CASES])
def test_checker(name, solution, wrong) -> None:
    assert grade(name, solution).correct is True
    for bad in wrong:
        verdict = grade(name, bad)
        assert verdict.correct is False, (bad, verdict)
        assert len(verdict.message) > 20
    assert grade(name, ...).correct is None


@pytest.mark.parametrize("name", ["mlp.bn_backward", "mlp.ce_grad"])
def test_unfinished_function_is_not_attempted(name: str) -> None:
    assert grade(name, todo).correct is None
