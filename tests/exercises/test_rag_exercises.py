"""Checkers of the chapter 32 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from dlscratch.exercises import core
from dlscratch.exercises.rag import INBATCH_VALUES, SATURATION_VALUES
from dlscratch.training.bm25 import BM25
from tests.exercises.grading import assert_correct, assert_grades, assert_hint


@pytest.fixture(autouse=True)
def _only_rag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("rag",))


def bm25_scores(docs, query, k1, b, floor=True, length=True, distinct=False, plain_idf=False):  # noqa: ANN001, ANN201
    N = len(docs)
    avgdl = sum(len(d) for d in docs) / N
    df: dict[str, int] = {}
    for d in docs:
        for t in set(d):
            df[t] = df.get(t, 0) + 1
    idf = {t: math.log(N / n) if plain_idf else math.log((N - n + 0.5) / (n + 0.5)) for t, n in df.items()}
    if floor:
        eps = 0.25 * sum(idf.values()) / len(idf)
        idf = {t: (eps if v < 0 else v) for t, v in idf.items()}
    out = []
    for d in docs:
        norm = k1 * (1 - b + b * len(d) / avgdl) if length else k1
        out.append(sum(idf.get(t, 0.0) * d.count(t) * (k1 + 1) / (d.count(t) + norm) for t in (set(query) if distinct else query)))
    return torch.tensor(out)


def saturation() -> float:
    k1, f = SATURATION_VALUES["k1"], SATURATION_VALUES["f"]
    return f * (k1 + 1) / (f + k1)


CASES: list[tuple[str, Any, list[Any]]] = [
    ("rag.bm25_scores", lambda: bm25_scores,
     [lambda: lambda d, q, k1, b: bm25_scores(d, q, k1, b, floor=False), lambda: lambda d, q, k1, b: bm25_scores(d, q, k1, b, length=False),
      lambda: lambda d, q, k1, b: torch.zeros(3), lambda: 1.0]),
    ("rag.saturation", saturation, [lambda: float(SATURATION_VALUES["f"]), lambda: 2.5, lambda: "x"]),
    ("rag.initial_loss", lambda: math.log(INBATCH_VALUES["batch_size"]), [lambda: math.log(63), lambda: 6.0, lambda: 0.0]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_specific_hints() -> None:
    assert_hint("rag.bm25_scores", lambda d, q, k1, b: bm25_scores(d, q, k1, b, floor=False), "epsilon")
    assert_hint("rag.bm25_scores", lambda d, q, k1, b: bm25_scores(d, q, k1, b, length=False), "length normalisation")
    assert_hint("rag.bm25_scores", lambda d, q, k1, b: bm25_scores(d, q, k1, b, distinct=True), "counts twice")
    assert_hint("rag.bm25_scores", lambda d, q, k1, b: bm25_scores(d, q, k1, b, plain_idf=True), "ln(N / n_t)")
    assert_hint("rag.saturation", 10.0, "saturates")
    assert_hint("rag.saturation", 2.5, "limit")
    assert_hint("rag.initial_loss", math.log(63), "B - 1")
    assert_hint("rag.initial_loss", math.log2(64), "bits")
    assert_hint("rag.initial_loss", math.log(64 * 64), "one row")
    assert_correct("rag.initial_loss", torch.tensor(math.log(64)))


def test_saturation_matches_a_measurement() -> None:
    k1, b, f = SATURATION_VALUES["k1"], SATURATION_VALUES["b"], SATURATION_VALUES["f"]
    filler = [f"x{i}" for i in range(f)]
    docs = [["t"] + filler[: f - 1], ["t"] * f] + [[w] * f for w in "uvwxyz"]  # all of length f; two of the eight hold "t"
    index = BM25(docs, k1=k1, b=b, dtype=torch.float64)
    once, many = index.scores([["t"]])[0, :2].tolist()
    assert many / once == pytest.approx(saturation())
