"""Checkers of the chapter 3 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import core
from .grading import assert_correct, assert_hint, assert_rejected


@pytest.fixture(autouse=True)
def _only_bigram(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("bigram",))


# ---- bigram.smoothed_prob: corpus ann, anna, nan, ana; row 'a' holds a->n 4 times and a->. twice
SMOOTHED = (4 + 1) / (6 + 27)


# ---- bigram.reversed: the measurement the exercise asks for
@functools.cache
def reversed_nll() -> float:
    from dlscratch.data import names_split
    from dlscratch.models import BigramCounts

    split = names_split()
    return BigramCounts.fit([w[::-1] for w in split.train]).nll([w[::-1] for w in split.val])


# ---- bigram.word_nll
ITOS = ".abcdefghijklmnopqrstuvwxyz"


def word_nll_solution(word: str, P: torch.Tensor) -> float:
    ix = [0] + [ITOS.index(c) for c in word] + [0]
    return -torch.stack([P[a, b].log() for a, b in zip(ix, ix[1:])]).mean().item()


def word_nll_sum(word: str, P: torch.Tensor) -> float:
    ix = [0] + [ITOS.index(c) for c in word] + [0]
    return -sum(P[a, b].log().item() for a, b in zip(ix, ix[1:]))


def word_nll_no_end(word: str, P: torch.Tensor) -> float:
    ix = [0] + [ITOS.index(c) for c in word]
    return -sum(P[a, b].log().item() for a, b in zip(ix, ix[1:])) / (len(ix) - 1)


def word_nll_transposed(word: str, P: torch.Tensor) -> float:
    return word_nll_solution(word, P.T)


def word_nll_todo(word: str, P: torch.Tensor) -> float:
    raise NotImplementedError


# ---- bigram.gradient
def grad_solution(W: torch.Tensor, counts: torch.Tensor, reg: float) -> torch.Tensor:
    N = counts.to(W.dtype)
    n_a = N.sum(dim=1, keepdim=True)  # examples per context
    return (n_a * torch.softmax(W, dim=1) - N) / N.sum() + 2 * reg * W / W.numel()


def grad_no_mean(W: torch.Tensor, counts: torch.Tensor, reg: float) -> torch.Tensor:
    N = counts.to(W.dtype)
    return N.sum(dim=1, keepdim=True) * torch.softmax(W, dim=1) - N + 2 * reg * W / W.numel()


def grad_flipped(W: torch.Tensor, counts: torch.Tensor, reg: float) -> torch.Tensor:
    return -grad_solution(W, counts, reg)


def grad_no_penalty(W: torch.Tensor, counts: torch.Tensor, reg: float) -> torch.Tensor:
    return grad_solution(W, counts, 0.0)


def grad_todo(W: torch.Tensor, counts: torch.Tensor, reg: float) -> torch.Tensor:
    raise NotImplementedError


CORRECT: list[tuple[str, Any]] = [
    ("bigram.smoothed_prob", SMOOTHED),
    ("bigram.smoothed_prob", torch.tensor(5 / 33)),
    ("bigram.reversed", reversed_nll()),
    ("bigram.word_nll", word_nll_solution),
    ("bigram.gradient", grad_solution),
]

WRONG: list[tuple[str, Any]] = [
    ("bigram.smoothed_prob", 4 / 6),
    ("bigram.smoothed_prob", 5 / 7),
    ("bigram.smoothed_prob", 5 / 32),
    ("bigram.smoothed_prob", "5/33"),
    ("bigram.smoothed_prob", ...),
    ("bigram.reversed", reversed_nll() + 0.1),
    ("bigram.reversed", math.log(27)),
    ("bigram.reversed", 2.0),
    ("bigram.reversed", "2.45"),
    ("bigram.reversed", ...),
    ("bigram.word_nll", word_nll_sum),
    ("bigram.word_nll", word_nll_no_end),
    ("bigram.word_nll", word_nll_transposed),
    ("bigram.word_nll", word_nll_todo),
    ("bigram.word_nll", 2.5),
    ("bigram.gradient", grad_no_mean),
    ("bigram.gradient", grad_flipped),
    ("bigram.gradient", grad_no_penalty),
    ("bigram.gradient", grad_todo),
    ("bigram.gradient", ...),
]


@pytest.mark.parametrize(("name", "answer"), CORRECT)
def test_correct_answer_passes(name: str, answer: Any) -> None:
    assert_correct(name, answer)


@pytest.mark.parametrize(("name", "answer"), WRONG)
def test_wrong_or_missing_answer_fails(name: str, answer: Any) -> None:
    assert_rejected(name, answer)


@pytest.mark.parametrize(
    ("name", "answer", "hint"),
    [
        ("bigram.smoothed_prob", 4 / 6, "unsmoothed"),
        ("bigram.smoothed_prob", 5 / 7, "k * 27"),
        ("bigram.smoothed_prob", 5 / 32, "27 tokens"),
        ("bigram.reversed", reversed_nll() + 0.1, "Backwards is not harder"),
        ("bigram.reversed", 2.0, "measure it"),
        ("bigram.word_nll", word_nll_sum, "mean"),
        ("bigram.word_nll", word_nll_no_end, "both ends"),
        ("bigram.word_nll", word_nll_transposed, "row"),
        ("bigram.gradient", grad_no_mean, "divide"),
        ("bigram.gradient", grad_flipped, "sign"),
        ("bigram.gradient", grad_no_penalty, "penalty"),
    ],
)
def test_wrong_answer_gets_a_hint(name: str, answer: Any, hint: str) -> None:
    assert_hint(name, answer, hint)


def test_references_are_independent_of_the_checkers() -> None:
    from dlscratch.data import names_split
    from dlscratch.models import BigramCounts

    # the solution's claim: reading backwards changes no bigram probability of a whole name, for any k
    split = names_split()
    for k in (0.5, 1.0):
        forward = BigramCounts.fit(split.train).nll(split.val, smoothing=k)
        backward = BigramCounts.fit([w[::-1] for w in split.train]).nll([w[::-1] for w in split.val], smoothing=k)
        assert forward == pytest.approx(backward, abs=1e-12)
    # the gradient solution against autograd on random data
    g = torch.Generator().manual_seed(0)
    W = torch.randn(4, 4, dtype=torch.float64, generator=g)
    x, y = torch.randint(0, 4, (30,), generator=g), torch.randint(0, 4, (30,), generator=g)
    counts = torch.bincount(x * 4 + y, minlength=16).view(4, 4)
    w = W.clone().requires_grad_(True)
    (F.cross_entropy(w[x], y) + 0.2 * (w**2).mean()).backward()
    torch.testing.assert_close(grad_solution(W, counts, 0.2), w.grad)
    # the NLL of a word against a hand computation with a uniform table: ln 27 per bigram
    assert word_nll_solution("emma", torch.full((27, 27), 1 / 27, dtype=torch.float64)) == pytest.approx(math.log(27))
