r"""Exercise checkers for chapter 32, "Retrieval-augmented generation" (topic prefix ``rag.``).

The function checker runs the package's own tested :class:`~dlscratch.training.bm25.BM25` on
seeded random corpora and compares; the number checkers recompute the answer from the formulas.
A wrong answer gets a hint. The reference solutions live in the tests.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch

from ..training.bm25 import BM25
from .answers import close, require_callable, require_number
from .core import exercise

__all__ = ["SATURATION_VALUES", "INBATCH_VALUES", "check_bm25_scores", "check_saturation", "check_initial_loss"]

# rag.saturation: BM25's k1 and b, and the count f of a query term in a document of average length
SATURATION_VALUES = {"k1": 1.5, "b": 0.75, "f": 10}
# rag.initial_loss: in-batch negatives with this batch size, at a start where every similarity is equal
INBATCH_VALUES = {"batch_size": 64}


def _variants(docs: list[list[str]], query: list[str], k1: float, b: float) -> dict[str, torch.Tensor]:
    """Scores of common mistakes, to recognise them."""
    N = len(docs)
    lens = torch.tensor([len(d) for d in docs], dtype=torch.float64)
    n_t = {t: sum(t in d for d in docs) for t in set(query)}
    raw = {t: math.log((N - n + 0.5) / (n + 0.5)) for t, n in n_t.items() if n > 0}
    index = BM25(docs, dtype=torch.float64)
    floored = {t: index.idf[index.vocab[t]].item() for t in raw}

    def score(idf: dict[str, float], norm: torch.Tensor, terms: list[str]) -> torch.Tensor:
        out = torch.zeros(N, dtype=torch.float64)
        for t in terms:
            f = torch.tensor([d.count(t) for d in docs], dtype=torch.float64)
            out += idf.get(t, 0.0) * f * (k1 + 1) / (f + norm)
        return out

    norm = k1 * (1 - b + b * lens / lens.mean())
    return {
        "no_floor": score(raw, norm, query),
        "no_length": score(floored, torch.full_like(lens, k1), query),
        "set_query": score(floored, norm, sorted(set(query))),
        "plain_idf": score({t: math.log(N / n) for t, n in n_t.items() if n > 0}, norm, query),
    }


@exercise("rag.bm25_scores")
def check_bm25_scores(answer: Any) -> None:
    r"""``answer(docs, query, k1, b)``: the BM25 (Okapi, ``rank_bm25``'s idf floor) score of ``query`` against each document."""
    fn = require_callable(answer, "my_bm25_scores")
    rng = random.Random(32)
    words = [f"w{i}" for i in range(12)]
    for case in range(4):
        docs = [[rng.choice(words[: 3 + 3 * case]) for _ in range(rng.randint(1, 12))] for _ in range(8 + case)]
        docs[0] = ["w0"] * 3 + docs[0]  # "w0" in most documents: its idf is negative, floored
        query = ["w0", rng.choice(words), rng.choice(words), "w1", "w1", "nowhere"]
        k1, b = (1.5, 0.75) if case < 2 else (1.2, 0.3)
        want = BM25(docs, k1=k1, b=b, dtype=torch.float64).scores([query])[0]  # (N,)
        with torch.no_grad():
            got = fn(docs, query, k1, b)
        got = torch.as_tensor(got, dtype=torch.float64) if not isinstance(got, torch.Tensor) else got.double()
        if got.shape != want.shape:
            raise AssertionError(f"return one score per document, shape ({len(docs)},), got {tuple(got.shape)}")
        if torch.allclose(got, want, atol=1e-9):
            continue
        wrong = _variants(docs, query, k1, b)
        if torch.allclose(got, wrong["no_floor"], atol=1e-9):
            raise AssertionError("close: a term in more than half the documents has a negative idf, which rank_bm25 replaces "
                                 "by epsilon (0.25) times the mean idf over the vocabulary.")
        if torch.allclose(got, wrong["no_length"], atol=1e-9):
            raise AssertionError("the length normalisation is missing: k1 is scaled by (1 - b + b |d| / avgdl).")
        if torch.allclose(got, wrong["set_query"], atol=1e-9):
            raise AssertionError("a query term that appears twice counts twice: sum over the query's tokens, not its distinct terms.")
        if torch.allclose(got, wrong["plain_idf"], atol=1e-9):
            raise AssertionError("BM25's idf is ln((N - n_t + 0.5) / (n_t + 0.5)), not ln(N / n_t).")
        raise AssertionError(f"wrong scores on test corpus {case}: check the idf (with its floor), the saturation "
                             "f (k1 + 1) / (f + k1 (1 - b + b |d| / avgdl)) and the sum over the query's tokens.")


@exercise("rag.saturation")
def check_saturation(answer: Any) -> None:
    r"""The score of a term that occurs ``f`` times, over its score at one occurrence, in a document of average length."""
    got = require_number(answer, "the ratio")
    k1, f = SATURATION_VALUES["k1"], SATURATION_VALUES["f"]
    want = f * (k1 + 1) / (f + k1)  # at |d| = avgdl the norm is k1; one occurrence gives (k1 + 1) / (1 + k1) = 1
    if close(got, want, 1e-4):
        return
    if close(got, f, 1e-4):
        raise AssertionError("that is plain term frequency; BM25 saturates: the term's weight grows as f (k1 + 1) / (f + k1).")
    if close(got, k1 + 1, 1e-4):
        raise AssertionError("that is the limit as f grows without bound; the question asks for f = "
                             f"{f}, where the curve has not reached it.")
    if close(got, math.log(f) + 1, 1e-4) or close(got, 1 + math.log(f), 1e-4):
        raise AssertionError("that is the logarithmic tf of TF-IDF; BM25's saturation is f (k1 + 1) / (f + k1 K) with K = 1 here.")
    raise AssertionError(f"{got:g} is not it: at |d| = avgdl the length factor is 1, so the weight is idf · f (k1 + 1) / (f + k1).")


@exercise("rag.initial_loss")
def check_initial_loss(answer: Any) -> None:
    r"""The in-batch-negatives loss when every similarity in the batch is equal: :math:`\ln B`."""
    got = require_number(answer, "the loss")
    B = INBATCH_VALUES["batch_size"]
    want = math.log(B)
    if close(got, want, 1e-4):
        return
    if close(got, math.log(B - 1), 1e-4):
        raise AssertionError("the softmax runs over all B passages of the row, the positive included: B terms, not B - 1.")
    if close(got, math.log2(B), 1e-4):
        raise AssertionError("that is in bits; the loss uses the natural logarithm.")
    if close(got, math.log(B * B), 1e-4):
        raise AssertionError("each question's softmax is over one row of B similarities, not over the whole B x B matrix.")
    raise AssertionError(f"{got:g} is not it: with equal similarities the softmax of each row is uniform over the batch.")
