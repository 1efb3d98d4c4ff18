"""Checkers of the chapter 6 exercises: a correct answer passes, wrong ones fail with a specific hint."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlscratch.exercises import core, grade
from dlscratch.exercises.deepnets import DROPOUT_P

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_deepnets(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("deepnets",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- deepnets.softmax_jacobian
def softmax_jacobian(z: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(z, dim=-1)  # (N, K)
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (N, K, K)


def test_softmax_jacobian() -> None:
    def diag_only(z):
        return torch.diag_embed(torch.softmax(z, -1))

    def outer_only(z):
        p = torch.softmax(z, -1)
        return -p[:, :, None] * p[:, None, :]

    def diagonal_of_jacobian(z):
        p = torch.softmax(z, -1)
        return torch.diag_embed(p * (1 - p))

    wrongs = [lambda: diag_only, lambda: outer_only, lambda: diagonal_of_jacobian, lambda: lambda z: torch.softmax(z, -1), lambda: 0]
    assert_grades("deepnets.softmax_jacobian", lambda: softmax_jacobian, wrongs)
    _wrong("deepnets.softmax_jacobian", diag_only, "through the normaliser")
    _wrong("deepnets.softmax_jacobian", outer_only, "misses its own term")
    _wrong("deepnets.softmax_jacobian", diagonal_of_jacobian, "only the diagonal")
    _wrong("deepnets.softmax_jacobian", lambda z: torch.softmax(z, -1), "one (")
    # chained with dL/dp = -onehot / p, the Jacobian gives the chapter's gradient p - onehot, eq. (grad)
    z, y = torch.randn(3, 5, dtype=torch.float64), torch.tensor([0, 4, 2])
    p = torch.softmax(z, -1)
    dL_dp = -torch.nn.functional.one_hot(y, 5) / p
    torch.testing.assert_close(torch.einsum("nij,ni->nj", softmax_jacobian(z), dL_dp), p - torch.nn.functional.one_hot(y, 5))


# ---- deepnets.bn_two_examples: the measurement, with torch's own layer
def bn_pair(seed: int) -> float:
    torch.manual_seed(seed)
    with torch.no_grad():
        return nn.BatchNorm1d(64)(10 * torch.randn(2, 64)).abs().mean().item()


def test_bn_two_examples() -> None:
    for seed in (1, 2):
        assert grade("deepnets.bn_two_examples", bn_pair(seed)).correct
    assert_grades("deepnets.bn_two_examples", lambda: 1.0, [lambda: math.sqrt(2 / math.pi), lambda: 0.0, lambda: 0.5])
    _wrong("deepnets.bn_two_examples", math.sqrt(2 / math.pi), "mean |y| of a standard normal")
    _wrong("deepnets.bn_two_examples", 0.0, "not y itself")
    _wrong("deepnets.bn_two_examples", 0.5, "measure it")


# ---- deepnets.dropout_variance
def test_dropout_variance() -> None:
    torch.manual_seed(5)
    measured = nn.Dropout(DROPOUT_P).train()(torch.ones(500_000)).var().item()
    assert grade("deepnets.dropout_variance", measured).correct
    exact = DROPOUT_P / (1 - DROPOUT_P)  # E[y^2] - 1 = 1/(1-p) - 1
    assert_grades("deepnets.dropout_variance", lambda: exact, [lambda: DROPOUT_P * (1 - DROPOUT_P), lambda: 1.0, lambda: 0.0, lambda: 0.5])
    _wrong("deepnets.dropout_variance", DROPOUT_P * (1 - DROPOUT_P), "Bernoulli")
    _wrong("deepnets.dropout_variance", 1.0, "the mean")
    _wrong("deepnets.dropout_variance", 0.0, "evaluation mode")
    _wrong("deepnets.dropout_variance", 0.5, "E[y^2] - E[y]^2")


# ---- deepnets.adam_tiny_grad
def adam_step() -> float:
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([w], lr=1e-3)
    w.grad = torch.full_like(w, 1e-9)
    opt.step()
    return w.detach().abs().item()


def test_adam_tiny_grad() -> None:
    assert adam_step() == pytest.approx(1e-3 * 1e-9 / (1e-9 + 1e-8), rel=1e-5)
    assert_grades("deepnets.adam_tiny_grad", adam_step, [lambda: 1e-3, lambda: 1e-12, lambda: 5e-4])
    _wrong("deepnets.adam_tiny_grad", 1e-3, "rule of thumb")
    _wrong("deepnets.adam_tiny_grad", 1e-12, "SGD step")
    _wrong("deepnets.adam_tiny_grad", 5e-4, "measure it")
