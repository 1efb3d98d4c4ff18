"""Checkers of the chapter 25 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.mamba import STATE_CONFIG, ZOH_VALUES
from dlscratch.models.mamba import Mamba, MambaConfig
from tests.exercises.grading import assert_grades


@pytest.fixture(autouse=True)
def _only_mamba(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("mamba",))


def zoh_solution() -> float:
    A, B, dt = ZOH_VALUES["A"], ZOH_VALUES["B"], ZOH_VALUES["delta"]
    return (math.exp(dt * A) - 1) / A * B


def state_bytes_solution() -> int:
    c = STATE_CONFIG
    cfg = MambaConfig(vocab_size=8, n_layer=c["n_layer"], d_model=c["d_model"], expand=c["expand"], d_state=c["d_state"], d_conv=c["d_conv"])
    with torch.device("meta"):
        return sum(s.nbytes() for s in Mamba(cfg).new_state(c["batch_size"]))


def scan(u, delta, A, B, C, D, skip=True, euler_a=False):  # noqa: ANN001, ANN201
    h = torch.zeros(u.size(0), u.size(2), A.size(1), dtype=u.dtype)
    ys = []
    for t in range(u.size(1)):
        dA = delta[:, t, :, None] * A
        a = 1 + dA if euler_a else torch.exp(dA)
        h = a * h + delta[:, t, :, None] * B[:, t, None, :] * u[:, t, :, None]  # (B, D, N)
        ys.append((h * C[:, t, None, :]).sum(-1) + (D * u[:, t] if skip else 0))
    return torch.stack(ys, 1)


CASES: list[tuple[str, Any, list[Any]]] = [
    ("mamba.zoh_b_bar", zoh_solution, [lambda: 0.5, lambda: math.exp(-1.0), lambda: -zoh_solution(), lambda: "x"]),
    ("mamba.state_bytes", state_bytes_solution,
     [lambda: state_bytes_solution() // 2, lambda: 24 * 1536 * 16 * 4, lambda: 24 * 1536 * 20 * 4, lambda: 7]),
    ("mamba.selective_scan", lambda: scan,
     [lambda: lambda *a: scan(*a, skip=False), lambda: lambda *a: scan(*a, euler_a=True), lambda: 3]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_known_values_and_specific_hints() -> None:
    assert state_bytes_solution() == 24 * 1536 * (3 + 16) * 4
    assert "Euler" in grade("mamba.zoh_b_bar", 0.5).message
    assert "K - 1" in grade("mamba.state_bytes", 24 * 1536 * 20 * 4).message
    assert "d_inner" in grade("mamba.state_bytes", state_bytes_solution() // 2).message
    assert "skip" in grade("mamba.selective_scan", lambda *a: scan(*a, skip=False)).message
