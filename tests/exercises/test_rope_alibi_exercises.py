"""Checkers of the chapter 18 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.rope_alibi import SHARE_HEADS, SHARE_KEYS, SHARE_RECENT, TURNS_CONTEXT, TURNS_HEAD_SIZE
from tests.exercises.grading import assert_grades


@pytest.fixture(autouse=True)
def _only_rope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("rope_alibi",))


def my_rope(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    hs = x.size(-1)
    theta = 10000.0 ** (-2 * torch.arange(hs // 2, dtype=torch.float64) / hs)  # (hs/2,)
    phi = pos.to(torch.float64)[:, None] * theta  # (T, hs/2)
    phi = torch.cat([phi, phi], dim=-1)  # (T, hs)
    x1, x2 = x.chunk(2, dim=-1)
    return x * phi.cos() + torch.cat([-x2, x1], dim=-1) * phi.sin()


def my_rope_interleaved(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    hs = x.size(-1)
    theta = 10000.0 ** (-2 * torch.arange(hs // 2, dtype=torch.float64) / hs)
    phi = pos.to(torch.float64)[:, None] * theta
    c, s = phi.cos(), phi.sin()
    e, o = x[..., 0::2], x[..., 1::2]
    return torch.stack([e * c - o * s, e * s + o * c], -1).flatten(-2)


def full_turns_solution() -> int:
    return sum((TURNS_CONTEXT - 1) * 10000.0 ** (-2 * i / TURNS_HEAD_SIZE) >= 2 * math.pi for i in range(TURNS_HEAD_SIZE // 2))


def recent_share_solution() -> list[float]:
    out = []
    for h in range(SHARE_HEADS):
        r = math.exp(-(2.0 ** (-8 * (h + 1) / SHARE_HEADS)))  # e^{-m}
        out.append((1 - r**SHARE_RECENT) / (1 - r**SHARE_KEYS))  # two geometric series
    return out


CASES: list[tuple[str, Any, list[Any]]] = [
    ("rope.apply", lambda: my_rope, [lambda: my_rope_interleaved, lambda: (lambda x, p: my_rope(x, -p)),
                                      lambda: (lambda x, p: x), lambda: (lambda x, p: x[..., :1]), lambda: 3]),
    ("rope.full_turns", full_turns_solution, [lambda: 40, lambda: 64, lambda: 23, lambda: "many"]),
    ("rope.recent_share", recent_share_solution,
     [lambda: recent_share_solution()[::-1], lambda: [0.125] * 4, lambda: [1.0, 1.0], lambda: "all"]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_known_values() -> None:
    assert full_turns_solution() == 41  # i = 40 turns by 2047 * 10^-2.5 = 6.47 > 2 pi, i = 41 by 5.61
    shares = recent_share_solution()
    assert shares[0] > 0.99 and 0.2 < shares[-1] < 0.3 and shares == sorted(shares, reverse=True)


def test_hints_are_specific() -> None:
    assert "interleaved" in grade("rope.apply", my_rope_interleaved).message
    assert "order" in grade("rope.recent_share", recent_share_solution()[::-1]).message
