"""Checkers of the chapter 1 exercises: a correct answer passes, wrong ones fail with a specific hint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import check, core, grade

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_foundations(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("foundations",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- essentials.broadcast_shape
def test_broadcast_shape() -> None:
    assert grade("essentials.broadcast_shape", torch.Size([8, 7, 6, 5])).correct
    assert_grades("essentials.broadcast_shape", lambda: (8, 7, 6, 5), [lambda: (8, 1, 6, 5), lambda: "8, 7, 6, 5"])
    _wrong("essentials.broadcast_shape", (7, 6, 5), "4 dimensions")
    _wrong("essentials.broadcast_shape", (8, 1, 6, 5), "the other size wins")
    _wrong("essentials.broadcast_shape", "8, 7, 6, 5", "tuple of ints")


# ---- essentials.strides
def test_strides() -> None:
    assert_grades("essentials.strides", lambda: (1, 12, 4), [lambda: (12, 4, 1), lambda: (4, 12, 1), lambda: (1, 12)])
    _wrong("essentials.strides", (12, 4, 1), "before the permute")
    _wrong("essentials.strides", (4, 12, 1), "reorder them")
    _wrong("essentials.strides", (1, 12), "3 strides")
    assert torch.arange(24).view(2, 3, 4).permute(2, 0, 1).stride() == (1, 12, 4)


# ---- essentials.embedding_grad
def embedding_grad(ids: torch.Tensor, grad_out: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    C = grad_out.size(-1)
    return grad_out.new_zeros(num_embeddings, C).index_add_(0, ids.reshape(-1), grad_out.reshape(-1, C))


def embedding_grad_assigned(ids: torch.Tensor, grad_out: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    C = grad_out.size(-1)
    grad = grad_out.new_zeros(num_embeddings, C)
    grad[ids.reshape(-1)] = grad_out.reshape(-1, C)
    return grad


def embedding_grad_averaged(ids: torch.Tensor, grad_out: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    counts = torch.bincount(ids.reshape(-1), minlength=num_embeddings).clamp(min=1)[:, None]
    return embedding_grad(ids, grad_out, num_embeddings) / counts


def test_embedding_grad() -> None:
    wrongs = [
        lambda: embedding_grad_assigned,
        lambda: embedding_grad_averaged,
        lambda: lambda ids, g, V: g,
        lambda: lambda ids, g, V: g.new_ones(V, g.size(-1)),
        lambda: 3,
    ]
    assert_grades("essentials.embedding_grad", lambda: embedding_grad, wrongs)
    _wrong("essentials.embedding_grad", embedding_grad_assigned, "do not assign")
    _wrong("essentials.embedding_grad", embedding_grad_averaged, "nothing in the lookup averages")
    _wrong("essentials.embedding_grad", lambda ids, g, V: g, "one row per id")
    _wrong("essentials.embedding_grad", lambda ids, g, V: g.new_ones(V, g.size(-1)), "rows never looked up stay zero")
    _wrong("essentials.embedding_grad", 3, "pass your function")


# ---- essentials.softmax_ce_floor
def test_softmax_ce_floor() -> None:
    labels = torch.tensor([3, 0, 0, 2, 4, 1])  # any labels give the same floor

    def measured() -> float:
        return F.cross_entropy(F.one_hot(labels, 5).float(), labels).item()

    assert math.isclose(measured(), math.log(math.e + 4) - 1, rel_tol=1e-6)
    assert_grades("essentials.softmax_ce_floor", measured, [lambda: 0.0, lambda: math.log(5), lambda: 0.5])
    _wrong("essentials.softmax_ce_floor", 0.0, "softmax of its own")
    _wrong("essentials.softmax_ce_floor", math.log(5), "chance level")
    _wrong("essentials.softmax_ce_floor", math.log(math.e + 4), "log-sum-exp alone")
    _wrong("essentials.softmax_ce_floor", 0.5, "measure it")
    _wrong("essentials.softmax_ce_floor", "0.9", "as a number")


def test_unknown_exercise_is_an_error() -> None:
    with pytest.raises(ValueError, match="essentials.nope"):
        check("essentials.nope", 1)


def test_grade_number_table_of_mistakes() -> None:
    from dlscratch.exercises.answers import grade_number

    table = ((2.0, "you doubled it"), (0.5, "you halved it"))
    assert grade_number(1.0 + 1e-9, "x", 1.0, mistakes=table, hint="think again") == pytest.approx(1.0)
    with pytest.raises(AssertionError, match="you halved it"):
        grade_number(0.5, "x", 1.0, mistakes=table, hint="think again")
    with pytest.raises(AssertionError, match="^3 is not it: think again$"):
        grade_number(3, "x", 1.0, mistakes=table, hint="think again")
    with pytest.raises(AssertionError, match="give x as a number"):
        grade_number("1", "x", 1.0, hint="think again")
