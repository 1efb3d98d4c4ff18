"""Checkers of the chapter 22 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.moe import COLLAPSE_SETTING, MIXTRAL_CONFIG
from dlscratch.layers.moe import drop_fraction
from dlscratch.models.moe_lm import MoELM, MoELMConfig, active_parameters
from tests.exercises.grading import assert_grades


@pytest.fixture(autouse=True)
def _only_moe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("moe",))


def load_balancing_loss(logits, top_k, per_token=False, scale=True, soft=True):  # noqa: ANN001, ANN201
    N, E = logits.shape
    probs = logits.softmax(-1)
    experts = probs.topk(top_k, dim=-1).indices  # (N, k)
    f = torch.zeros(E, dtype=logits.dtype).index_add_(0, experts.reshape(-1), torch.ones(experts.numel(), dtype=logits.dtype))
    f = f / (N if per_token else experts.numel())
    P = probs.mean(0) if soft else f
    return (E if scale else 1) * (f * P).sum()


def mixtral_parameters_solution() -> tuple[int, int]:
    c = MIXTRAL_CONFIG
    with torch.device("meta"):
        m = MoELM(MoELMConfig(**c, block_size=16))
    return sum(p.numel() for p in m.parameters()), active_parameters(m)


def collapse_drop_solution() -> float:
    s = COLLAPSE_SETTING
    return drop_fraction(torch.zeros(s["num_tokens"], s["top_k"], dtype=torch.long), s["num_experts"], s["capacity_factor"])


CASES: list[tuple[str, Any, list[Any]]] = [
    ("moe.load_balancing_loss", lambda: load_balancing_loss,
     [lambda: lambda z, k: load_balancing_loss(z, k, per_token=True), lambda: lambda z, k: load_balancing_loss(z, k, scale=False),
      lambda: lambda z, k: load_balancing_loss(z, k, soft=False), lambda: 3]),
    ("moe.mixtral_parameters", mixtral_parameters_solution,
     [lambda: mixtral_parameters_solution()[::-1], lambda: (mixtral_parameters_solution()[0],) * 2, lambda: 4.7e10]),
    ("moe.collapse_drop", collapse_drop_solution, [lambda: 7 / 8, lambda: 1 - collapse_drop_solution(), lambda: "most"]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_known_values_and_specific_hints() -> None:
    total, active = mixtral_parameters_solution()
    assert round(total / 1e9, 1) == 46.7 and round(active / 1e9, 1) == 12.9  # Mixtral's paper: 47B total, 13B active
    assert collapse_drop_solution() == pytest.approx(1 - 1.25 / 8)
    assert "k*N assignments" in grade("moe.load_balancing_loss", lambda z, k: load_balancing_loss(z, k, per_token=True)).message
    assert "multiply by E" in grade("moe.load_balancing_loss", lambda z, k: load_balancing_loss(z, k, scale=False)).message
    assert "probability" in grade("moe.load_balancing_loss", lambda z, k: load_balancing_loss(z, k, soft=False)).message
    assert "wrong way round" in grade("moe.mixtral_parameters", (active, total)).message
    assert "E - k" in grade("moe.mixtral_parameters", (total, total)).message
    assert "capacity factor 1" in grade("moe.collapse_drop", 7 / 8).message
