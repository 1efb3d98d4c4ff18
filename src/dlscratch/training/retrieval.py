r"""Retrieval: exact top-k by one matrix product, recall@k, and chunking passages.

Chapter 32, *Retrieval-augmented generation*. A retriever scores every passage for a query
(BM25 in :mod:`~dlscratch.training.bm25`, an inner product of embeddings here) and keeps the
``k`` best; recall@k is the fraction of questions whose relevant passage is among them. An
approximate index that scores only some passages is :mod:`~dlscratch.training.ivf`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["check_queries", "top_k", "recall_at_k", "DenseIndex", "Chunks", "chunk_passages"]


def check_queries(queries: Sequence[Sequence[str]] | Sequence[str]) -> None:
    r"""Refuse an empty batch of queries and any query without a token (``ValueError`` naming it)."""
    if len(queries) == 0:
        raise ValueError("need at least one query, got none")
    for i, q in enumerate(queries):
        if len(q) == 0 or (isinstance(q, str) and not q.strip()):
            raise ValueError(f"query {i} is empty ({q!r}): a query needs at least one token")


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The ``k`` highest scores of each row and their columns, best first.

    Args:
        scores: one row per query, one column per passage.
        k: how many passages to keep, ``1 <= k <= N``.

    Returns:
        ``(values, indices)``, each :math:`(n_q, k)`.

    Raises:
        ValueError: if ``k`` is not in ``[1, N]``, e.g. larger than the corpus.

    Shape:
        - scores: :math:`(n_q, N)`; outputs: :math:`(n_q, k)`
    """
    N = scores.shape[-1]
    if not 1 <= k <= N:
        raise ValueError(f"k must be between 1 and the corpus size N={N}, got k={k}")
    return scores.topk(k, dim=-1)


def recall_at_k(retrieved: torch.Tensor, relevant: torch.Tensor, k: int | None = None) -> float:
    r"""Fraction of queries whose relevant passage is among the first ``k`` retrieved.

    .. math:: \text{recall@}k = \frac{1}{n_q} \sum_{i=1}^{n_q} \mathbb{1}\bigl[r_i \in \{d_{i1}, \ldots, d_{ik}\}\bigr]

    Args:
        retrieved: passage indices, best first, :math:`(n_q, K)`.
        relevant: the one relevant passage of each query, :math:`(n_q,)`.
        k: the cut-off (default: all ``K`` columns).

    Raises:
        ValueError: if the shapes do not match or ``k`` is not in ``[1, K]``.
    """
    K = retrieved.shape[-1]
    k = K if k is None else k
    if retrieved.dim() != 2 or relevant.shape != retrieved.shape[:1]:
        raise ValueError(f"need retrieved (n_q, K) and relevant (n_q,), got {tuple(retrieved.shape)} and {tuple(relevant.shape)}")
    if not 1 <= k <= K:
        raise ValueError(f"k must be between 1 and the {K} retrieved columns, got k={k}")
    return (retrieved[:, :k] == relevant[:, None]).any(-1).float().mean().item()


class DenseIndex:
    r"""Exact maximum-inner-product search: every passage scored by one matrix product.

    .. math:: \operatorname{top-}k_{\,j}\; \mathbf{q}^\top \mathbf{p}_j \quad\text{for all } j \text{ at once: } \mathbf{Q} \mathbf{P}^\top

    Chapter 32.

    Shape:
        - vectors: :math:`(N, D)`; :meth:`search` queries :math:`(n_q, D)` → scores, indices :math:`(n_q, k)`
    """

    def __init__(self, vectors: torch.Tensor) -> None:
        if vectors.dim() != 2 or vectors.shape[0] == 0:
            raise ValueError(f"need passage vectors of shape (N, D) with N >= 1, got {tuple(vectors.shape)}")
        self.vectors = vectors  # P, (N, D)

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The ``k`` passages of highest inner product with each query, best first."""
        if queries.dim() != 2 or queries.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"queries must be (n_q, {self.vectors.shape[1]}), got {tuple(queries.shape)}")
        return top_k(queries @ self.vectors.T, k)  # (n_q, D) @ (D, N) -> (n_q, N)


@dataclass(frozen=True)
class Chunks:
    r"""Passages cut into chunks of at most ``size`` lines, each chunk headed by its passage's title."""

    texts: tuple[str, ...]  # "title:\nline ...", one per chunk
    passage: torch.Tensor  # (n_chunks,) the passage each chunk comes from
    offsets: torch.Tensor  # (n_passages + 1,) chunks of passage i are offsets[i] .. offsets[i + 1] - 1
    size: int  # lines per chunk

    def locate(self, passage: torch.Tensor, line: torch.Tensor) -> torch.Tensor:
        r"""The chunk that holds line ``line`` (0-based) of passage ``passage``: :math:`(n,)` → :math:`(n,)`."""
        return self.offsets[passage] + torch.div(line, self.size, rounding_mode="floor")


def chunk_passages(passages: Sequence[Sequence[str]], size: int, titles: Sequence[str] | None = None) -> Chunks:
    r"""Cut each passage (a sequence of lines) into consecutive chunks of ``size`` lines.

    The last chunk of a passage may be shorter. As DPR prepends an article's title to each of
    its 100-word chunks, each chunk starts with its passage's title (here: the speaker).

    Args:
        passages: each a sequence of lines.
        size: lines per chunk, at least 1.
        titles: one title per passage (none when omitted).

    Returns:
        The :class:`Chunks`.

    Raises:
        ValueError: if ``size <= 0``, a passage has no line, or the titles do not match the passages.
    """
    if size <= 0:
        raise ValueError(f"chunk size must be a positive number of lines, got {size}")
    if titles is not None and len(titles) != len(passages):
        raise ValueError(f"need one title per passage: {len(passages)} passages, {len(titles)} titles")
    texts, owner, offsets = [], [], [0]
    for i, lines in enumerate(passages):
        if len(lines) == 0:
            raise ValueError(f"passage {i} has no line to chunk")
        head = "" if titles is None else f"{titles[i]}:\n"
        for s in range(0, len(lines), size):
            texts.append(head + "\n".join(lines[s : s + size]))
            owner.append(i)
        offsets.append(len(texts))
    return Chunks(tuple(texts), torch.tensor(owner), torch.tensor(offsets), size)
