r"""An inverted-file (IVF) index from scratch: k-means cells, and a search that probes a few of them.

Chapter 32, *Retrieval-augmented generation*. Jégou et al. (2011) and FAISS partition the passage
vectors into ``n_lists`` cells by k-means; a query scores the centroids, opens the ``nprobe``
closest cells and scores only the vectors inside them. It is approximate: a neighbour whose cell
is not opened is missed. Recall against exact search rises with ``nprobe``, and so does the work.
"""

from __future__ import annotations

import torch

from .retrieval import DenseIndex

__all__ = ["kmeans", "nearest_centroid", "IVFIndex"]


def nearest_centroid(x: torch.Tensor, centroids: torch.Tensor, batch_size: int = 65536) -> torch.Tensor:
    r"""The index of each point's nearest centroid in squared distance, in batches of points: :math:`(N, D), (k, D) \to (N,)`."""
    c_sq = (centroids * centroids).sum(1)  # (k,)
    out = [(c_sq - 2 * x[s : s + batch_size] @ centroids.T).argmin(1) for s in range(0, len(x), batch_size)]  # ||x||^2 is the same for all c
    return torch.cat(out)


def kmeans(x: torch.Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Lloyd's k-means: assign each point to its nearest centroid, move each centroid to its points' mean.

    .. math::

        a_i = \arg\min_c \lVert \mathbf{x}_i - \boldsymbol{\mu}_c \rVert^2, \qquad
        \boldsymbol{\mu}_c = \frac{1}{|\{i : a_i = c\}|} \sum_{i : a_i = c} \mathbf{x}_i

    The centroids start from k-means++ (Arthur and Vassilvitskii, 2007): the first a random
    point, each next one a point drawn with probability proportional to its squared distance to
    the nearest centroid so far. A cell left empty is moved to a random point. Chapter 32.

    Args:
        x: the points.
        k: the number of cells, ``1 <= k <= N``.
        iters: Lloyd iterations.
        generator: seeds the draws.

    Returns:
        ``(centroids (k, D), assignment (N,))``, the assignment to the final centroids.

    Raises:
        ValueError: if ``k`` is not in ``[1, N]`` or ``iters < 1``.

    Shape:
        - x: :math:`(N, D)`
    """
    N, D = x.shape
    if not 1 <= k <= N or iters < 1:
        raise ValueError(f"need 1 <= k <= N={N} and iters >= 1, got k={k}, iters={iters}")
    sq = (x * x).sum(1)  # (N,) ||x||^2
    centroids = x.new_empty(k, D)
    centroids[0] = x[torch.randint(0, N, (1,), generator=generator)]
    nearest = (sq - 2 * x @ centroids[0] + centroids[0] @ centroids[0]).clamp(min=0)  # (N,) squared distance to the nearest centroid
    for c in range(1, k):  # k-means++ seeding
        i = torch.multinomial(nearest + 1e-12, 1, generator=generator)
        centroids[c] = x[i]
        nearest = torch.minimum(nearest, (sq - 2 * x @ centroids[c] + centroids[c] @ centroids[c]).clamp(min=0))
    for _ in range(iters + 1):
        dist = sq[:, None] - 2 * x @ centroids.T + (centroids * centroids).sum(1)  # (N, k) squared distances
        assign = dist.argmin(1)  # (N,)
        if _ == iters:
            break
        counts = torch.bincount(assign, minlength=k)  # (k,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)  # (k, D)
        empty = counts == 0
        centroids = sums / counts.clamp(min=1)[:, None]
        if empty.any():
            centroids[empty] = x[torch.randint(0, N, (int(empty.sum()),), generator=generator)]
    return centroids, assign


class IVFIndex:
    r"""Inverted-file index for maximum inner product over (normalised) vectors.

    Build: k-means on the vectors, then one list of vector ids per cell, padded into an
    ``(n_lists, L_max)`` table, and the cells' vectors stored contiguously, cell by cell, in an
    ``(n_lists, L_max, D)`` block (zeros in the padding). Search: the ``nprobe`` cells of highest centroid inner product,
    their vectors gathered and scored, the best ``k`` kept:

    .. math::

        \mathcal{C}(\mathbf{q}) = \operatorname{top-}n_\text{probe}\; \mathbf{q}^\top \boldsymbol{\mu}_c, \qquad
        \operatorname{top-}k_{\; j \,:\, a_j \in \mathcal{C}(\mathbf{q})}\; \mathbf{q}^\top \mathbf{p}_j

    With unit vectors, the nearest centroid in distance is the one of highest inner product.
    Chapter 32.

    Args:
        vectors: the passage vectors, :math:`(N, D)`.
        n_lists: the number of k-means cells.
        iters: k-means iterations.
        generator: seeds k-means.
        sample: train k-means on this many vectors drawn at random (all when ``None``), then assign
            every vector to its nearest centroid, as FAISS trains on a sample.
    """

    def __init__(self, vectors: torch.Tensor, n_lists: int, iters: int = 10, generator: torch.Generator | None = None,
                 sample: int | None = None) -> None:
        self.vectors = DenseIndex(vectors).vectors  # (N, D), shape-checked
        train = vectors if sample is None or sample >= len(vectors) else vectors[torch.randperm(len(vectors), generator=generator)[:sample]]
        self.centroids, _ = kmeans(train, n_lists, iters, generator)  # (n_lists, D)
        assign = nearest_centroid(vectors, self.centroids)  # (N,)
        sizes = torch.bincount(assign, minlength=n_lists)  # (n_lists,)
        order = assign.argsort(stable=True)  # vector ids grouped by cell
        start = torch.cumsum(sizes, 0) - sizes  # (n_lists,) first slot of each cell in `order`
        slot = torch.arange(len(order)) - start[assign[order]]  # position of each id inside its cell
        self.lists = torch.full((n_lists, int(sizes.max())), -1, dtype=torch.long)  # (n_lists, L_max), -1 = empty slot
        self.lists[assign[order], slot] = order
        self.blocks = vectors[self.lists.clamp(min=0)] * (self.lists >= 0)[..., None]  # (n_lists, L_max, D), cell by cell
        self.sizes = sizes

    def search(self, queries: torch.Tensor, k: int, nprobe: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        r"""Approximate top-``k`` of each query, probing ``nprobe`` cells.

        Args:
            queries: :math:`(n_q, D)`.
            k: passages to return, ``1 <= k <= N``.
            nprobe: cells to open, ``1 <= nprobe <= n_lists``.

        Returns:
            ``(scores, indices, scored)``: each :math:`(n_q, k)`, best first; an index of ``-1``
            (score ``-inf``) where the opened cells held fewer than ``k`` vectors; and the mean
            number of vectors scored per query.

        Raises:
            ValueError: if ``k`` or ``nprobe`` is out of range.
        """
        n_lists = self.centroids.shape[0]
        if not 1 <= nprobe <= n_lists:
            raise ValueError(f"nprobe must be between 1 and n_lists={n_lists}, got nprobe={nprobe}")
        if not 1 <= k <= len(self.vectors):
            raise ValueError(f"k must be between 1 and the corpus size N={len(self.vectors)}, got k={k}")
        vals, ids, scored = [], [], 0.0
        L_max, D = self.blocks.shape[1:]
        step = max(1, (1 << 20) // (nprobe * L_max * D))  # queries per batch: at most ~1M gathered numbers
        flat = self.blocks.view(n_lists, L_max * D)  # one row per cell: a cell is one contiguous copy
        for s in range(0, len(queries), step):
            q = queries[s : s + step]  # (b, D)
            cells = (q @ self.centroids.T).topk(nprobe, dim=-1).indices  # (b, nprobe)
            cand = self.lists[cells].flatten(1)  # (b, M = nprobe * L_max) vector ids, -1 = padding
            vecs = flat.index_select(0, cells.flatten()).view(len(q), nprobe * L_max, D)  # (b, M, D)
            scores = (vecs @ q[:, :, None]).squeeze(-1).masked_fill(cand < 0, float("-inf"))  # (b, M)
            v, pos = scores.topk(min(k, scores.shape[1]), dim=-1)  # (b, k')
            vals.append(v)
            ids.append(cand.gather(1, pos).masked_fill(v == float("-inf"), -1))
            scored += (cand >= 0).sum().item()
        vals, ids = torch.cat(vals), torch.cat(ids)
        if vals.shape[1] < k:  # fewer slots than k: pad
            pad = k - vals.shape[1]
            vals = torch.cat([vals, vals.new_full((len(vals), pad), float("-inf"))], 1)
            ids = torch.cat([ids, ids.new_full((len(ids), pad), -1)], 1)
        return vals, ids, scored / len(queries)
