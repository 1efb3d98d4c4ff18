"""Checkers of the chapter 24 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.flash import STATE_CONFIG, TILES_CONFIG
from dlscratch.layers import linear_attention_step
from tests.exercises.grading import assert_grades


@pytest.fixture(autouse=True)
def _only_flash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("flash",))


def merge(o1, lse1, o2, lse2):  # noqa: ANN001, ANN201
    lse = torch.logaddexp(lse1, lse2)
    return torch.exp(lse1 - lse)[..., None] * o1 + torch.exp(lse2 - lse)[..., None] * o2, lse


def merge_overflowing(o1, lse1, o2, lse2):  # noqa: ANN001, ANN201
    a, b = torch.exp(lse1)[..., None], torch.exp(lse2)[..., None]
    return (a * o1 + b * o2) / (a + b), torch.log(torch.exp(lse1) + torch.exp(lse2))


def causal_tiles_solution() -> int:
    T, block = TILES_CONFIG["T"], TILES_CONFIG["block"]
    return sum(1 for i0 in range(0, T, block) for j0 in range(0, T, block) if j0 <= min(i0 + block, T) - 1)


def linear_state_bytes_solution() -> int:
    nh, hs = STATE_CONFIG["n_head"], STATE_CONFIG["head_size"]
    x = torch.zeros(1, nh, hs)
    _, (S, z) = linear_attention_step(x, x, x)
    return S.nbytes + z.nbytes


CASES: list[tuple[str, Any, list[Any]]] = [
    ("flash.merge", lambda: merge,
     [lambda: lambda o1, l1, o2, l2: ((o1 + o2) / 2, torch.logaddexp(l1, l2)), lambda: merge_overflowing,
      lambda: lambda o1, l1, o2, l2: (merge(o1, l1, o2, l2)[0], torch.maximum(l1, l2)), lambda: lambda *a: merge(*a)[0], lambda: 3]),
    ("flash.causal_tiles", causal_tiles_solution, [lambda: 64, lambda: 28, lambda: 21.0, lambda: "half"]),
    ("flash.linear_state_bytes", linear_state_bytes_solution,
     [lambda: 8 * 64 * 64 * 4, lambda: 64 * 65 * 4, lambda: 8 * 64 * 65, lambda: 1]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_known_values_and_specific_hints() -> None:
    assert causal_tiles_solution() == 36 and linear_state_bytes_solution() == 8 * (64 * 64 + 64) * 4
    assert "do not count equally" in grade("flash.merge", lambda o1, l1, o2, l2: ((o1 + o2) / 2, torch.logaddexp(l1, l2))).message
    assert "overflows" in grade("flash.merge", merge_overflowing).message
    assert "not the larger" in grade("flash.merge", lambda o1, l1, o2, l2: (merge(o1, l1, o2, l2)[0], torch.maximum(l1, l2))).message
    assert "pair of tensors" in grade("flash.merge", lambda *a: merge(*a)[0]).message
    assert "every tile" in grade("flash.causal_tiles", 64).message
    assert "partial tile row" in grade("flash.causal_tiles", 28).message
    assert "normaliser z" in grade("flash.linear_state_bytes", 8 * 64 * 64 * 4).message
