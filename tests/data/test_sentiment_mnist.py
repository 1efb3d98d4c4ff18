"""The sentiment snippets, the AFINN lexicon and MNIST: counts, splits, baselines, bad input."""

from __future__ import annotations

import bz2
import gzip

import numpy as np
import pytest
import torch

from dlscratch.data import (
    load_afinn,
    load_mnist,
    load_sentiment,
    mnist_split,
    sentiment_split,
    stratified_indices,
)
from dlscratch.data import sentiment as sentiment_module
from dlscratch.data import mnist as mnist_module
from dlscratch.training import sentiment_baselines


def test_sentiment_counts_dedup_and_majority() -> None:
    texts, labels = load_sentiment()
    assert len(texts) == len(set(texts)) == 12_752  # 12,808 labelled rows, 56 repeats dropped
    assert labels.sum() == 7_368  # fresh
    assert abs(labels.mean() - 0.578) < 5e-4  # the majority class is 57.8 %
    assert all("  " not in t and "\n" not in t for t in texts)


def test_sentiment_split_is_disjoint_stratified_and_fixed() -> None:
    s = sentiment_split()
    parts = (s.train_text, s.val_text, s.test_text)
    assert [len(p) for p in parts] == [10_201, 1_275, 1_276]
    assert not set(s.train_text) & set(s.test_text) and not set(s.val_text) & set(s.test_text)
    for y in (s.y_train, s.y_val, s.y_test):
        assert y.dtype == torch.long and abs(y.float().mean().item() - 0.578) < 0.002
    again = sentiment_split()
    assert again.test_text == s.test_text and torch.equal(again.y_train, s.y_train)
    assert sentiment_split(seed=1).test_text != s.test_text
    assert s.labels == ("rotten", "fresh")


def test_stratified_indices_partition_every_item_once() -> None:
    labels = np.repeat(np.arange(3), [10, 20, 31])
    parts = stratified_indices(labels, (0.5, 0.25, 0.25), seed=3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(61))
    assert np.bincount(labels[parts[0]]).tolist() == [5, 10, 16]  # round(f * n_c) per class


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (0.9, 0.1, 0.0), (0.5, 0.5)])
def test_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="fractions"):
        sentiment_split(fractions=fractions)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fractions"):
        mnist_split(fractions=fractions)  # type: ignore[arg-type]


def test_corrupt_sentiment_columns(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    bad = tmp_path / "rt.csv.bz2"
    bad.write_bytes(bz2.compress(b"label,sentence\nfresh,good\n"))
    monkeypatch.setattr(sentiment_module, "fetch", lambda name: bad)
    with pytest.raises(ValueError, match="'category' and 'text'.*label"):
        load_sentiment()
    bad.write_bytes(bz2.compress(b"category,text\nsplendid,good\n"))
    with pytest.raises(ValueError, match="splendid"):
        load_sentiment()


def test_afinn() -> None:
    lex = load_afinn()
    assert len(lex) == 3_382
    assert lex["abandon"] == -2 and min(lex.values()) == -5 and max(lex.values()) == 5


def test_mnist_split_shapes_balance_and_pooling() -> None:
    images, labels = load_mnist()
    assert images.shape == (5000, 28, 28) and np.bincount(labels).tolist() == [500] * 10
    assert 0.0 <= images.min() and images.max() <= 1.0
    s = mnist_split()
    assert s.x_train.shape == (4000, 1, 28, 28) and len(s.y_val) == len(s.y_test) == 500
    assert s.y_test.bincount().tolist() == [50] * 10
    small = mnist_split(size=14)
    assert small.x_train.shape == (4000, 1, 14, 14)
    assert torch.allclose(small.x_test[:3], torch.nn.functional.avg_pool2d(s.x_test[:3], 2))
    with pytest.raises(ValueError, match="size must be 28 or 14, got 8"):
        mnist_split(size=8)


def test_mnist_wrong_columns(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    bad = tmp_path / "m.csv.gz"
    with gzip.open(bad, "wt") as fh:
        fh.write("1,2,3\n4,5,6\n")
    monkeypatch.setattr(mnist_module, "fetch", lambda name: bad)
    with pytest.raises(ValueError, match="785 columns.*\\(2, 3\\)"):
        load_mnist()


def test_baselines_majority_and_tfidf() -> None:
    b = sentiment_baselines()
    s = sentiment_split()
    assert b.majority_test == pytest.approx(s.y_test.float().mean().item())
    assert 0.7 < b.tfidf_test < 0.85 and b.tfidf_C in (1.0, 3.0, 10.0)
    with pytest.raises(ValueError, match="positive values of C"):
        sentiment_baselines(grid=(0.0,))


def test_pad_sequences() -> None:
    from dlscratch.data import pad_sequences

    ids, lengths = pad_sequences([[1, 2, 3], [4], [5, 6]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0], [5, 6, 0]] and lengths.tolist() == [3, 1, 2]
    ids, lengths = pad_sequences([[1, 2, 3], [4]], pad_id=9, max_len=2)
    assert ids.tolist() == [[1, 2], [4, 9]] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        pad_sequences([[1], []], pad_id=0)
    with pytest.raises(ValueError, match="max_len must be at least 1, got 0"):
        pad_sequences([[1]], pad_id=0, max_len=0)
