r"""BM25 (Okapi) from scratch: a sparse term-document weight matrix, scored by one matrix product.

Chapter 32, *Retrieval-augmented generation*. Each (term, document) pair that occurs gets its
weight in the sum below (:class:`BM25`); the score of a query is the sum of the weights of its tokens (a token
repeated in the query counts again), so the scores of a batch of queries against every document
are one sparse-dense product: ``W (N, V) @ counts.T (V, n_q)``. The idf, its floor for terms in more
than half the documents, and the defaults follow ``rank_bm25.BM25Okapi``, which the tests and the
chapter match to float precision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from .retrieval import check_queries, top_k

__all__ = ["BM25", "bm25_idf"]


class BM25:
    r"""An Okapi BM25 index over tokenised documents.

    .. math::

        \operatorname{score}(q, d) = \sum_{t \in q} \operatorname{idf}(t)\,
        \frac{f_{t,d}\,(k_1 + 1)}{f_{t,d} + k_1 \bigl(1 - b + b\, |d| / \overline{|d|}\bigr)},
        \qquad \operatorname{idf}(t) = \ln \frac{N - n_t + 0.5}{n_t + 0.5}

    with :math:`f_{t,d}` the count of term :math:`t` in document :math:`d`, :math:`|d|` its length,
    :math:`\overline{|d|}` the mean length, :math:`N` documents and :math:`n_t` of them holding
    :math:`t`. A negative idf (a term in more than half the documents) is replaced by
    :math:`\varepsilon` times the mean idf, as ``rank_bm25.BM25Okapi`` does. Chapter 32.

    Args:
        corpus: the documents, each a sequence of tokens (strings).
        k1: term-frequency saturation :math:`k_1`.
        b: length normalisation :math:`b \in [0, 1]`.
        epsilon: the idf floor, a fraction of the mean idf.
        dtype: dtype of the weights (float64 to compare with ``rank_bm25``).

    Raises:
        ValueError: on an empty corpus or a corpus of empty documents, or ``k1 < 0``, ``b`` outside [0, 1].
    """

    def __init__(
        self, corpus: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if len(corpus) == 0:
            raise ValueError("BM25 needs at least one document, got an empty corpus")
        if k1 < 0 or not 0.0 <= b <= 1.0:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self.vocab: dict[str, int] = {}
        rows, cols, freqs = [], [], []
        for d, doc in enumerate(corpus):  # building the index: one pass over the text
            for term, f in Counter(doc).items():
                rows.append(d)
                cols.append(self.vocab.setdefault(term, len(self.vocab)))
                freqs.append(f)
        N, V = len(corpus), len(self.vocab)
        if V == 0:
            raise ValueError(f"all {N} documents are empty: nothing to index")
        row, col = torch.tensor(rows), torch.tensor(cols)
        f = torch.tensor(freqs, dtype=torch.float64)  # f_{t,d} of every (d, t) that occurs
        doc_len = torch.tensor([len(doc) for doc in corpus], dtype=torch.float64)  # |d|, (N,)
        n_t = torch.bincount(col, minlength=V).double()  # documents holding each term, (V,)
        self.idf = bm25_idf(n_t, N, epsilon)  # (V,)
        norm = k1 * (1 - b + b * doc_len / doc_len.mean())  # (N,)
        w = self.idf[col] * f * (k1 + 1) / (f + norm[row])  # the weight of each nonzero
        self.weights = torch.sparse_coo_tensor(torch.stack([row, col]), w.to(dtype), (N, V), check_invariants=True).coalesce()  # W, (N, V)

    @property
    def n_docs(self) -> int:
        r"""Number of documents :math:`N`."""
        return self.weights.shape[0]

    def query_counts(self, queries: Sequence[Sequence[str]]) -> torch.Tensor:
        r"""Each query as counts over the index's terms (unknown tokens dropped): :math:`(n_q, V)`."""
        check_queries(queries)
        counts = torch.zeros(len(queries), len(self.vocab), dtype=self.weights.dtype)
        for i, q in enumerate(queries):
            ids = [self.vocab[t] for t in q if t in self.vocab]
            if ids:
                counts[i].index_add_(0, torch.tensor(ids), torch.ones(len(ids), dtype=counts.dtype))
        return counts

    def scores(self, queries: Sequence[Sequence[str]], batch_size: int = 256) -> torch.Tensor:
        r"""BM25 scores of every query against every document: :math:`(n_q, N)`.

        Raises:
            ValueError: if there is no query or a query has no token.
        """
        check_queries(queries)
        out = []
        for s in range(0, len(queries), batch_size):  # batches of queries bound the dense counts' memory
            counts = self.query_counts(queries[s : s + batch_size])  # (b, V)
            out.append((self.weights @ counts.T).T)  # (N, V) @ (V, b) -> (b, N)
        return torch.cat(out)

    def search(self, queries: Sequence[Sequence[str]], k: int) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The ``k`` best documents of each query: scores and indices, each :math:`(n_q, k)`, best first."""
        return top_k(self.scores(queries), k)


def bm25_idf(n_t: torch.Tensor, N: int, epsilon: float) -> torch.Tensor:
    r"""Okapi idf :math:`\ln((N - n_t + 0.5) / (n_t + 0.5))`, negatives floored at ``epsilon`` × the mean idf."""
    idf = torch.log(N - n_t + 0.5) - torch.log(n_t + 0.5)  # (V,)
    return torch.where(idf < 0, epsilon * idf.mean(), idf)
