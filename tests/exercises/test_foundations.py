"""Checkers of the chapter 1 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import check, core, grade
from dlscratch.exercises.foundations import param_count_model


@pytest.fixture(autouse=True)
def _only_foundations(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("foundations",))


def logsumexp_solution(x: torch.Tensor, dim: int) -> torch.Tensor:
    m = x.amax(dim=dim, keepdim=True)
    return (m + (x - m).exp().sum(dim=dim, keepdim=True).log()).squeeze(dim)


def logsumexp_naive(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x.exp().sum(dim=dim).log()


def logsumexp_forgets_max(x: torch.Tensor, dim: int) -> torch.Tensor:
    m = x.amax(dim=dim, keepdim=True)
    return (x - m).exp().sum(dim=dim).log()


def logsumexp_keeps_dim(x: torch.Tensor, dim: int) -> torch.Tensor:
    return logsumexp_solution(x, dim).unsqueeze(dim)


def logsumexp_todo(x: torch.Tensor, dim: int) -> torch.Tensor:
    raise NotImplementedError


CORRECT: list[tuple[str, Any]] = [
    ("essentials.broadcast_shape", (8, 7, 6, 5)),
    ("essentials.broadcast_shape", torch.Size([8, 7, 6, 5])),
    ("essentials.strides", (1, 12, 4)),
    ("essentials.logsumexp", logsumexp_solution),
    ("essentials.param_count", 10 * 32 + 32 + 32 * 4 + 4),
]

WRONG: list[tuple[str, Any]] = [
    ("essentials.broadcast_shape", (8, 1, 6, 5)),
    ("essentials.broadcast_shape", (7, 6, 5)),
    ("essentials.broadcast_shape", "8, 7, 6, 5"),
    ("essentials.broadcast_shape", ...),
    ("essentials.strides", (12, 4, 1)),
    ("essentials.strides", (4, 12, 1)),
    ("essentials.strides", (1, 12)),
    ("essentials.strides", ...),
    ("essentials.logsumexp", logsumexp_naive),
    ("essentials.logsumexp", logsumexp_forgets_max),
    ("essentials.logsumexp", logsumexp_keeps_dim),
    ("essentials.logsumexp", logsumexp_todo),
    ("essentials.logsumexp", 3.0),
    ("essentials.param_count", 10 * 32 + 32 * 4),
    ("essentials.param_count", 485),
    ("essentials.param_count", 484.0),
    ("essentials.param_count", ...),
]


@pytest.mark.parametrize(("name", "answer"), CORRECT)
def test_correct_answer_passes(name: str, answer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is True and verdict.message.startswith("✓")


@pytest.mark.parametrize(("name", "answer"), WRONG)
def test_wrong_or_missing_answer_fails(name: str, answer: Any, capsys: pytest.CaptureFixture[str]) -> None:
    verdict = grade(name, answer)
    # a wrong answer is graded False, a placeholder None (not attempted)
    assert (verdict.correct, verdict.message[0]) in {(False, "✗"), (None, "○")}


def test_wrong_answer_gets_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    check("essentials.logsumexp", logsumexp_naive)
    assert "Subtract the maximum" in capsys.readouterr().out
    check("essentials.param_count", 10 * 32 + 32 * 4)
    assert "bias" in capsys.readouterr().out


def test_references_are_independent_of_the_checkers() -> None:
    # the reference answers above, recomputed from first principles
    x = torch.arange(24).view(2, 3, 4).permute(2, 0, 1)
    assert x.stride() == (1, 12, 4)
    assert torch.broadcast_shapes((8, 1, 6, 1), (7, 1, 5)) == (8, 7, 6, 5)
    assert sum(p.numel() for p in param_count_model().parameters()) == 484
    z = torch.randn(5, 9, dtype=torch.float64) * 500
    torch.testing.assert_close(logsumexp_solution(z, 1), torch.logsumexp(z, 1))


def test_unknown_exercise_is_an_error() -> None:
    with pytest.raises(ValueError, match="essentials.nope"):
        check("essentials.nope", 1)
