"""Checkers of the chapter 19 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core
from dlscratch.exercises.gqa import ATTENTION_CONFIG, BANDED_T, BANDED_WINDOWS
from dlscratch.layers import MultiHeadAttention
from tests.exercises.grading import assert_grades


@pytest.fixture(autouse=True)
def _only_gqa(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("gqa",))


def attention_params_solution() -> int:
    c = ATTENTION_CONFIG
    with torch.device("meta"):
        attn = MultiHeadAttention(c["hidden_size"], c["num_heads"], c["num_kv_heads"], bias=False)
    return sum(p.numel() for p in attn.parameters())


def receptive_field_solution(windows: list[int | None], T: int) -> int:
    if any(w is None for w in windows):
        return T
    return min(T, 1 + sum(w - 1 for w in windows))


def banded_memory_solution() -> float:
    T, (w1, w2) = BANDED_T, BANDED_WINDOWS
    return (-(-T // w2) * w2 * 2 * w2) / (-(-T // w1) * w1 * 2 * w1)


CASES: list[tuple[str, Any, list[Any]]] = [
    ("gqa.attention_params", attention_params_solution,
     [lambda: 4 * 8192**2, lambda: 2 * 8192**2, lambda: attention_params_solution() + 1, lambda: "big"]),
    ("gqa.receptive_field", lambda: receptive_field_solution,
     [lambda: (lambda windows, T: 1 + sum((w or T) - 1 for w in windows)),  # not capped at T
      lambda: (lambda windows, T: sum(w or T for w in windows)),
      lambda: (lambda windows, T: "far"), lambda: 7]),
    ("gqa.banded_memory", banded_memory_solution, [lambda: 0.25, lambda: 16.0, lambda: 1.0, lambda: 2.0]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_known_values() -> None:
    assert attention_params_solution() == 150_994_944
    assert banded_memory_solution() == 4.0
