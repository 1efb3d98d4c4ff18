r"""The two baselines every sentiment result of the book is reported next to.

* **Majority class**: always predict the label most common in the training part (fresh, 57.8 %).
* **TF-IDF + logistic regression**: a bag of word unigrams and bigrams, each weighted by
  :math:`(1 + \log \mathrm{tf}_{t,d})\,\log\frac{1 + N}{1 + \mathrm{df}_t}` and L2-normalised per
  sentence, fed to an L2-regularised logistic regression whose inverse strength :math:`C` is
  picked on the validation part. It is the classic strong baseline for sentence polarity (Pang and
  Lee 2005; Wang and Manning 2012), and what a Transformer has to beat to earn its cost.

scikit-learn does the work; it is imported only when a baseline is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from ..data.sentiment import SentimentSplit, sentiment_split

__all__ = ["SentimentBaselines", "sentiment_baselines"]


@dataclass(frozen=True)
class SentimentBaselines:
    r"""Validation and test accuracy of both baselines, and the :math:`C` the grid picked."""

    majority_val: float
    majority_test: float
    tfidf_val: float
    tfidf_test: float
    tfidf_C: float


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return (pred == y).float().mean().item()


def sentiment_baselines(
    split: SentimentSplit | None = None, grid: tuple[float, ...] = (1.0, 3.0, 10.0)
) -> SentimentBaselines:
    r"""Fit and score both baselines on ``split`` (default: the book's :func:`sentiment_split`).

    Args:
        split: the data; the book's split when ``None`` (that result is cached per process).
        grid: the values of :math:`C` tried; the one with the best validation accuracy is kept.

    Raises:
        ValueError: if ``grid`` is empty or holds a non-positive value.
    """
    if not grid or any(c <= 0 for c in grid):
        raise ValueError(f"grid must hold positive values of C, got {grid}")
    if split is None:
        return _book_baselines(tuple(grid))
    return _fit(split, tuple(grid))


@lru_cache(maxsize=4)
def _book_baselines(grid: tuple[float, ...]) -> SentimentBaselines:
    return _fit(sentiment_split(), grid)


def _fit(split: SentimentSplit, grid: tuple[float, ...]) -> SentimentBaselines:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    majority = int(split.y_train.float().mean().item() >= 0.5)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    x_train = vec.fit_transform(split.train_text)
    x_val, x_test = vec.transform(split.val_text), vec.transform(split.test_text)
    best: tuple[float, float, float] | None = None  # (val acc, test acc, C)
    for c in grid:
        clf = LogisticRegression(C=c, max_iter=2000).fit(x_train, split.y_train.numpy())
        val = _accuracy(torch.from_numpy(clf.predict(x_val)), split.y_val)
        if best is None or val > best[0]:
            best = (val, _accuracy(torch.from_numpy(clf.predict(x_test)), split.y_test), c)
    assert best is not None
    return SentimentBaselines(
        majority_val=_accuracy(torch.full_like(split.y_val, majority), split.y_val),
        majority_test=_accuracy(torch.full_like(split.y_test, majority), split.y_test),
        tfidf_val=best[0],
        tfidf_test=best[1],
        tfidf_C=best[2],
    )
