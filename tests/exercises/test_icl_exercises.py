"""Checkers of the chapter 30 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from dlscratch.data.icl_tasks import regression_prompts
from dlscratch.exercises import core, grade
from dlscratch.exercises.icl import OLS_VALUES, SCORE_VALUES
from dlscratch.training.icl import least_squares_predictions
from tests.exercises.grading import assert_correct, assert_grades, assert_hint, assert_rejected


@pytest.fixture(autouse=True)
def _only_icl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("icl",))


def prefix_matching(weights, tokens, same_token=False, all_queries=False):  # noqa: ANN001, ANN201
    B, nh, T, _ = weights.shape
    prev = torch.cat([torch.full((B, 1), -1, dtype=tokens.dtype), tokens[:, :-1]], 1)  # x_{j-1}
    keys = tokens if same_token else prev
    match = (tokens[:, :, None] == keys[:, None, :]) & torch.ones(T, T, dtype=torch.bool).tril()
    mass = (weights * match[:, None]).sum(-1)  # (B, nh, T)
    if all_queries:
        return mass.mean(dim=(0, 2))
    has = match.any(-1)
    return torch.stack([mass[:, h][has].mean() for h in range(nh)])


def ols_solution() -> float:
    d, k, s = OLS_VALUES["dim"], OLS_VALUES["k"], OLS_VALUES["noise_std"]
    return s**2 * (1 + d / (k - d - 1))


def score_solution() -> float:
    return -math.log(SCORE_VALUES["vocab_size"])


CASES: list[tuple[str, Any, list[Any]]] = [
    ("icl.prefix_matching", lambda: prefix_matching,
     [lambda: lambda w, x: prefix_matching(w, x, same_token=True), lambda: lambda w, x: prefix_matching(w, x, all_queries=True),
      lambda: lambda w, x: torch.zeros(3), lambda: 5]),
    ("icl.ols_error", ols_solution, [lambda: ols_solution() / 5, lambda: 0.25 * 5 / 4, lambda: 0.25 * (1 + 5 / 5), lambda: "x"]),
    ("icl.perfect_score", score_solution, [lambda: -score_solution(), lambda: -math.log2(1000), lambda: 0.0]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_specific_hints() -> None:
    assert_hint("icl.prefix_matching", lambda w, x: prefix_matching(w, x, same_token=True), "x_{j-1} = x_t")
    assert_hint("icl.prefix_matching", lambda w, x: prefix_matching(w, x, all_queries=True), "at least one such key")
    assert_hint("icl.ols_error", ols_solution() / 5, "divided by d")
    assert_hint("icl.ols_error", 0.25 * 5 / 4, "own noise")
    assert_hint("icl.ols_error", 0.25 * 2, "k - d - 1")
    assert_hint("icl.perfect_score", -score_solution(), "sign")
    assert_hint("icl.perfect_score", -math.log2(SCORE_VALUES["vocab_size"]), "bits")
    assert_correct("icl.perfect_score", score_solution())
    assert_rejected("icl.perfect_score", ...)


def test_ols_formula_matches_a_measurement() -> None:
    d, k, s = OLS_VALUES["dim"], OLS_VALUES["k"], OLS_VALUES["noise_std"]
    xs, ys, _ = regression_prompts(40000, k + 1, d, noise_std=s, generator=torch.Generator().manual_seed(0))
    measured = ((least_squares_predictions(xs.double(), ys.double())[:, k] - ys[:, k]) ** 2).mean().item()
    assert measured == pytest.approx(ols_solution(), rel=0.05)
