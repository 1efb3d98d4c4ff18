"""Checkers of the chapter 31 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import core
from dlscratch.exercises.align import BON_VALUES
from tests.exercises.grading import assert_grades, assert_hint


@pytest.fixture(autouse=True)
def _only_align(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("align",))


def dpo(pc, pr, rc, rr, beta, *, ref=True, sign=1.0, use_beta=True, reduce="mean"):  # noqa: ANN001, ANN201
    margin = (pc - rc) - (pr - rr) if ref else pc - pr
    z = sign * (beta if use_beta else 1.0) * margin
    loss = -F.logsigmoid(z)
    return loss.mean() if reduce == "mean" else loss.sum()


def my_gae(rewards, values, gamma, lam, *, returns=False):  # noqa: ANN001, ANN201
    B, R = rewards.shape
    adv = torch.zeros_like(rewards)
    next_adv, next_value = torch.zeros(B, dtype=rewards.dtype), torch.zeros(B, dtype=rewards.dtype)
    for t in reversed(range(R)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = adv[:, t] = delta + gamma * lam * next_adv
        next_value = values[:, t]
    return adv + values if returns else adv


def bon() -> float:
    n = BON_VALUES["n"]
    return math.log(n) - (n - 1) / n


CASES: list[tuple[str, Any, list[Any]]] = [
    ("align.dpo_loss", lambda: dpo, [lambda: lambda *a: dpo(*a, ref=False), lambda: lambda *a: dpo(*a, sign=-1.0), lambda: 3]),
    ("align.gae", lambda: my_gae, [lambda: lambda *a: my_gae(*a, returns=True), lambda: lambda r, v, g, l: my_gae(r, v, g, 1.0),
                                   lambda: lambda r, v, g, l: torch.zeros(2)]),
    ("align.best_of_n_kl", bon, [lambda: math.log(BON_VALUES["n"]), lambda: bon() / math.log(2), lambda: 0.0, lambda: "x"]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_specific_hints() -> None:
    assert_hint("align.dpo_loss", lambda *a: dpo(*a, ref=False), "reference model is missing")
    assert_hint("align.dpo_loss", lambda *a: dpo(*a, sign=-1.0), "sign")
    assert_hint("align.dpo_loss", lambda *a: dpo(*a, use_beta=False), "beta is missing")
    assert_hint("align.dpo_loss", lambda *a: dpo(*a, reduce="sum"), "average")
    assert_hint("align.gae", lambda *a: my_gae(*a, returns=True), "returns")
    assert_hint("align.gae", lambda r, v, g, l: my_gae(r, v, g, 1.0), "lambda = 1")
    assert_hint("align.gae", lambda r, v, g, l: my_gae(r, v, g, 0.0), "one-step TD error")
    assert_hint("align.best_of_n_kl", math.log(BON_VALUES["n"]), "(N - 1)/N")
    assert_hint("align.best_of_n_kl", bon() / math.log(2), "nats")
