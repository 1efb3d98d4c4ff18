"""BM25 from scratch against rank_bm25.BM25Okapi, on the same tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlscratch.data.shakespeare_turns import speaker_turns, word_tokens
from dlscratch.training.bm25 import BM25
from tests.data.test_shakespeare_turns import PLAY

rank_bm25 = pytest.importorskip("rank_bm25")



def corpus() -> list[list[str]]:
    return [word_tokens(t.text) for t in speaker_turns(PLAY)]


@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (1.2, 0.0), (0.5, 1.0), (2.0, 1.0)])
def test_scores_equal_rank_bm25(k1: float, b: float) -> None:
    docs = corpus()
    ours = BM25(docs, k1=k1, b=b, dtype=torch.float64)
    theirs = rank_bm25.BM25Okapi(docs, k1=k1, b=b)
    queries = [["speak", "speak", "citizen"], ["first", "citizen"], ["unknown", "word"], ["resolved"], ["what", "work's", "you"]]
    got = ours.scores(queries)
    want = torch.tensor(np.stack([theirs.get_scores(q) for q in queries]))
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


def test_floor_on_negative_idf_is_used() -> None:
    docs = [["a", "b"], ["a", "c"], ["a", "d"], ["e"]]  # "a" is in 3 of 4 documents: negative idf, floored
    ours = BM25(docs, dtype=torch.float64)
    assert ours.idf[ours.vocab["a"]] > 0
    want = torch.tensor(rank_bm25.BM25Okapi(docs).get_scores(["a", "e"]))
    torch.testing.assert_close(ours.scores([["a", "e"]])[0], want)


def test_random_corpus_matches() -> None:
    gen = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    docs = [list(gen.choice(words, size=gen.integers(1, 25))) for _ in range(40)]
    queries = [list(gen.choice(words, size=gen.integers(1, 6))) for _ in range(7)]
    got = BM25(docs, dtype=torch.float64).scores(queries, batch_size=3)
    theirs = rank_bm25.BM25Okapi(docs)
    torch.testing.assert_close(got, torch.tensor(np.stack([theirs.get_scores(q) for q in queries])))


def test_search_ranks_best_first() -> None:
    docs = corpus()
    vals, idx = BM25(docs).search([["bats", "and", "clubs"]], k=2)
    assert idx[0, 0].item() == 3 and vals[0, 0] > vals[0, 1]


def test_bad_input() -> None:
    docs = corpus()
    index = BM25(docs)
    with pytest.raises(ValueError, match=r"N=4, got k=9"):
        index.search([["speak"]], k=9)
    with pytest.raises(ValueError, match="query 1 is empty"):
        index.scores([["speak"], []])
    with pytest.raises(ValueError, match="empty corpus"):
        BM25([])
    with pytest.raises(ValueError, match="b=1.5"):
        BM25(docs, b=1.5)
