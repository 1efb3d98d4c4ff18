"""Checkers of the chapter 6 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.deepnets import DROPOUT_P


@pytest.fixture(autouse=True)
def _only_deepnets(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("deepnets",))


# ---- deepnets.ce_grad
def ce_grad_solution(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits, dim=-1)
    p[torch.arange(len(target)), target] -= 1.0
    return p / len(target)


def ce_grad_no_mean(logits, target):
    return ce_grad_solution(logits, target) * len(target)


def ce_grad_no_target(logits, target):
    return torch.softmax(logits, dim=-1) / len(target)


def ce_grad_todo(logits, target):
    raise NotImplementedError


# ---- deepnets.batchnorm_train
def bn_solution(x, weight, bias, eps):
    mean = x.mean(dim=0)
    var = ((x - mean) ** 2).mean(dim=0)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def bn_unbiased(x, weight, bias, eps):
    return (x - x.mean(0)) / torch.sqrt(x.var(0) + eps) * weight + bias


def bn_no_affine(x, weight, bias, eps):
    return bn_solution(x, torch.ones_like(weight), torch.zeros_like(bias), eps)


# ---- deepnets.param_count: Linear(64, 32, no bias) + BN(32) + Linear(32, 32, no bias) + BN(32) + Linear(32, 10)
PARAM_SOLUTION = 64 * 32 + 2 * 32 + 32 * 32 + 2 * 32 + 32 * 10 + 10


@pytest.mark.parametrize(
    ("name", "answer", "correct", "hint"),
    [
        ("deepnets.ce_grad", ce_grad_solution, True, ""),
        ("deepnets.ce_grad", ce_grad_no_mean, False, "mean"),
        ("deepnets.ce_grad", ce_grad_no_target, False, "target"),
        ("deepnets.ce_grad", lambda z, y: -ce_grad_solution(z, y), False, "sign"),
        ("deepnets.ce_grad", lambda z, y: 3.0, False, "tensor"),
        ("deepnets.ce_grad", ce_grad_todo, None, ""),
        ("deepnets.batchnorm_train", bn_solution, True, ""),
        ("deepnets.batchnorm_train", bn_unbiased, False, "biased"),
        ("deepnets.batchnorm_train", bn_no_affine, False, "weight and bias"),
        ("deepnets.dropout_variance", DROPOUT_P / (1 - DROPOUT_P), True, ""),
        ("deepnets.dropout_variance", DROPOUT_P * (1 - DROPOUT_P), False, "Bernoulli"),
        ("deepnets.dropout_variance", 1.0, False, "mean"),
        ("deepnets.dropout_variance", ..., None, ""),
        ("deepnets.param_count", PARAM_SOLUTION, True, ""),
        ("deepnets.param_count", PARAM_SOLUTION + 64, False, "no bias"),
        ("deepnets.param_count", PARAM_SOLUTION - 128, False, "gamma"),
        ("deepnets.param_count", "3530", False, "number"),
    ],
)
def test_checker_verdicts(name: str, answer, correct: bool | None, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is correct, verdict.message
    assert hint in verdict.message
