"""Checkers of the chapter 37 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dlscratch.exercises import core
from dlscratch.exercises.dist import BUBBLE_VALUES, CKPT_VALUES
from tests.exercises.grading import assert_grades, assert_hint


@pytest.fixture(autouse=True)
def _only_dist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("dist",))


def zero_bytes(n_params, stage, world_size, fp32=False, swap=False):  # noqa: ANN001, ANN201
    stage = {1: 2, 2: 1}.get(stage, stage) if swap else stage
    w, g, s = (4, 4, 8) if fp32 else (2, 2, 12)
    sharded = {0: set(), 1: {"s"}, 2: {"s", "g"}, 3: {"s", "g", "w"}}[stage]
    return n_params * sum(v / world_size if k in sharded else v for k, v in (("w", w), ("g", g), ("s", s)))


def ckpt_solution() -> int:
    act = CKPT_VALUES["batch"] * CKPT_VALUES["width"] * 4
    per_segment = CKPT_VALUES["layers"] // CKPT_VALUES["segments"]
    return (CKPT_VALUES["segments"] - 1) * act + per_segment * 2 * act


def bubble_solution() -> int:
    p, b = BUBBLE_VALUES["stages"], BUBBLE_VALUES["max_bubble"]
    m = 1
    while (p - 1) / (m + p - 1) > b:
        m += 1
    return m


CASES: list[tuple[str, Any, list[Any]]] = [
    ("dist.zero_bytes", lambda: zero_bytes,
     [lambda: lambda n, s, w: zero_bytes(n, s, w, fp32=True), lambda: lambda n, s, w: zero_bytes(n, s, w, swap=True),
      lambda: lambda n, s, w: 16 * n, lambda: 3]),
    ("dist.ckpt_peak", ckpt_solution, [lambda: ckpt_solution() + 8192, lambda: 16 * 2 * 8192, lambda: "x"]),
    ("dist.bubble", bubble_solution, [lambda: bubble_solution() - 1, lambda: 140, lambda: 7]),
    ("dist.tp_allreduces", lambda: 4, [lambda: 2, lambda: 8, lambda: 1]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_specific_hints() -> None:
    assert_hint("dist.zero_bytes", lambda n, s, w: zero_bytes(n, s, w, fp32=True), "fp32 count")
    assert_hint("dist.zero_bytes", lambda n, s, w: zero_bytes(n, s, w, swap=True), "swapped")
    assert_hint("dist.ckpt_peak", 16 * 2 * 8192, "without checkpointing")
    assert_hint("dist.ckpt_peak", ckpt_solution() + 8192, "last segment runs without Recompute")
    assert_hint("dist.bubble", bubble_solution() - 1, "round up")
    assert_hint("dist.bubble", 140, "denominator is m + p - 1")
    assert_hint("dist.tp_allreduces", 2, "backward pass")
    assert_hint("dist.tp_allreduces", 8, "one direction only")
    assert math.isclose(bubble_solution(), 133)
