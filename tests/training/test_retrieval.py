"""Exact top-k, recall@k, chunking and the IVF index."""

from __future__ import annotations

import pytest
import torch

from dlscratch.training.ivf import IVFIndex, kmeans
from dlscratch.training.retrieval import DenseIndex, chunk_passages, recall_at_k, top_k


def test_dense_index_equals_brute_force() -> None:
    P, Q = torch.randn(50, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)
    vals, idx = DenseIndex(P).search(Q, 5)
    for i in range(6):
        scores = [(Q[i] @ P[j]).item() for j in range(50)]
        best = sorted(range(50), key=lambda j: -scores[j])[:5]
        assert idx[i].tolist() == best
        torch.testing.assert_close(vals[i], torch.tensor([scores[j] for j in best], dtype=torch.float64))


def test_recall_at_k() -> None:
    retrieved = torch.tensor([[3, 1, 2], [0, 4, 5], [7, 8, 9]])
    relevant = torch.tensor([1, 0, 6])
    assert recall_at_k(retrieved, relevant, 1) == pytest.approx(1 / 3)
    assert recall_at_k(retrieved, relevant, 2) == pytest.approx(2 / 3)
    assert recall_at_k(retrieved, relevant) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k=4"):
        recall_at_k(retrieved, relevant, 4)


def test_top_k_bad_k() -> None:
    with pytest.raises(ValueError, match=r"corpus size N=3, got k=4"):
        top_k(torch.zeros(2, 3), 4)
    with pytest.raises(ValueError, match="k=0"):
        top_k(torch.zeros(2, 3), 0)


@pytest.mark.parametrize("size", [1, 2, 3, 10])
def test_chunks_cover_every_line_once(size: int) -> None:
    passages = [["a", "b", "c"], ["d"], ["e", "f", "g", "h", "i"]]
    chunks = chunk_passages(passages, size, titles=["X", "Y", "Z"])
    for p, lines in enumerate(passages):
        for j, line in enumerate(lines):
            c = chunks.locate(torch.tensor([p]), torch.tensor([j])).item()
            assert chunks.passage[c].item() == p
            assert line in chunks.texts[c].split("\n")[1:]
            assert chunks.texts[c].startswith("XYZ"[p] + ":")
    assert len(chunks.texts) == sum(-(-len(x) // size) for x in passages)


def test_chunk_bad_input() -> None:
    with pytest.raises(ValueError, match="got 0"):
        chunk_passages([["a"]], 0)
    with pytest.raises(ValueError, match="got -2"):
        chunk_passages([["a"]], -2)


def test_kmeans_finds_separated_clusters() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0]])
    x = (centres[:, None] + 0.1 * torch.randn(3, 30, 2, generator=gen)).reshape(90, 2)
    for seed in range(5):  # k-means++ seeding puts one centroid in each cluster
        c, a = kmeans(x, 3, iters=10, generator=torch.Generator().manual_seed(seed))
        assert ((x - c[a]) ** 2).sum() < 90 * 0.1
        assert sorted(torch.bincount(a).tolist()) == [30, 30, 30]


def test_ivf_all_cells_is_exact_and_recall_grows() -> None:
    gen = torch.Generator().manual_seed(0)
    P = torch.nn.functional.normalize(torch.randn(400, 16, generator=gen), dim=-1)
    Q = torch.nn.functional.normalize(torch.randn(30, 16, generator=gen), dim=-1)
    ivf = IVFIndex(P, n_lists=16, generator=gen)
    assert sorted(ivf.lists[ivf.lists >= 0].tolist()) == list(range(400))
    exact = DenseIndex(P).search(Q, 10)[1]
    vals, idx, scored = ivf.search(Q, 10, nprobe=16)
    assert torch.equal(idx, exact) and scored == 400
    recalls = []
    for nprobe in (1, 4, 16):
        got = ivf.search(Q, 10, nprobe)[1]
        recalls.append(sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(got, exact)) / exact.numel())
    assert recalls[0] < recalls[-1] == 1.0 and recalls[0] <= recalls[1] <= recalls[2]


def test_ivf_bad_input() -> None:
    ivf = IVFIndex(torch.randn(20, 4), n_lists=4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="N=20, got k=21"):
        ivf.search(torch.randn(1, 4), 21, 2)
    with pytest.raises(ValueError, match="nprobe=5"):
        ivf.search(torch.randn(1, 4), 3, 5)
    with pytest.raises(ValueError, match="k=30"):
        kmeans(torch.randn(20, 4), 30)
