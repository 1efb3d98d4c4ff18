"""Checkers of the chapter 29 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.exercises import core
from dlscratch.exercises.scaling import FLOP_CONFIG, OPTIMUM_FLOPS
from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.training.scaling import counted_flops
from tests.exercises.grading import assert_correct, assert_hint, assert_rejected


@pytest.fixture(autouse=True)
def _only_scaling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("scaling",))


def flops_solution() -> int:
    c = FLOP_CONFIG
    model = GPT(GPTConfig(vocab_size=c["vocab_size"], block_size=c["block_size"], n_layer=c["n_layer"], n_head=4, n_embd=c["n_embd"]))
    x = torch.randint(c["vocab_size"], (1, c["block_size"]))
    return counted_flops(lambda: model(x, x)[1].backward()) // c["block_size"]


def n_opt_solution() -> float:
    E, A, B, alpha, beta = 1.69, 406.4, 410.7, 0.34, 0.28
    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    return G * (OPTIMUM_FLOPS / 6) ** (beta / (alpha + beta))


def power_law_solution(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    lx, ly = x.log(), y.log()
    p = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    return math.exp((ly.mean() - p * lx.mean()).item()), p.item()


def test_correct_answers_pass() -> None:
    assert_correct("scaling.flops_per_token", flops_solution())
    assert_correct("scaling.chinchilla_n_opt", n_opt_solution())
    assert_correct("scaling.power_law", power_law_solution)


def test_placeholders_and_junk_are_not_accepted() -> None:
    for name in ("scaling.flops_per_token", "scaling.chinchilla_n_opt", "scaling.power_law"):
        assert_rejected(name, ...)
        assert_rejected(name, "x")
    assert_rejected("scaling.power_law", lambda x, y: (_ for _ in ()).throw(NotImplementedError()))


def test_hints() -> None:
    c = FLOP_CONFIG
    L, C, T, V = c["n_layer"], c["n_embd"], c["block_size"], c["vocab_size"]
    assert_hint("scaling.flops_per_token", flops_solution() / 3, "forward pass only")
    assert_hint("scaling.flops_per_token", 6 * 12 * L * C**2, "non-embedding")
    assert_hint("scaling.flops_per_token", 6 * (12 * L * C**2 + V * C), "attention scores")
    assert_hint("scaling.flops_per_token", 7, "is not it")
    assert_hint("scaling.chinchilla_n_opt", math.sqrt(OPTIMUM_FLOPS / 120), "20-tokens-per-parameter")
    assert_hint("scaling.chinchilla_n_opt", OPTIMUM_FLOPS / (6 * n_opt_solution()), "D_opt")
    assert_hint("scaling.chinchilla_n_opt", 1.0, "is not it")
    assert_hint("scaling.power_law", lambda x, y: (power_law_solution(x, y)[0], -power_law_solution(x, y)[1]), "sign")
    assert_hint("scaling.power_law", lambda x, y: (math.log(power_law_solution(x, y)[0]), power_law_solution(x, y)[1]), "scale k itself")

    def two_points(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        p = ((y[-1] / y[0]).log() / (x[-1] / x[0]).log()).item()
        return (y[0] / x[0] ** p).item(), p

    assert_hint("scaling.power_law", two_points, "two points")
    assert_hint("scaling.power_law", lambda x, y: 3, "tuple")
