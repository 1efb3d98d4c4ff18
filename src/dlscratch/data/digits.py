r"""scikit-learn's handwritten digits (1,797 images of 8×8 pixels), split the book's way.

The data ship inside scikit-learn, so nothing is downloaded. Every image chapter uses the same
stratified train / validation / test split (60 / 20 / 20 %, ``seed=0``), with pixels scaled from
``0..16`` to ``0..1``. Introduced in chapter 6 (deep networks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .splits import check_fractions, stratified_indices

__all__ = ["DigitsSplit", "load_digits_split"]


@dataclass(frozen=True)
class DigitsSplit:
    r"""Images ``(N, 1, 8, 8)`` float32 in ``[0, 1]`` and labels ``(N,)`` long, per split."""

    x_train: torch.Tensor  # (N_train, 1, 8, 8)
    y_train: torch.Tensor  # (N_train,)
    x_val: torch.Tensor  # (N_val, 1, 8, 8)
    y_val: torch.Tensor  # (N_val,)
    x_test: torch.Tensor  # (N_test, 1, 8, 8)
    y_test: torch.Tensor  # (N_test,)


def load_digits_split(seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> DigitsSplit:
    r"""The digits, shuffled within each class by ``seed`` and split stratified by ``fractions``.

    Each class is cut separately, so every split has (almost exactly) the class proportions of
    the whole set.

    Raises:
        ValueError: if the fractions are not positive or do not sum to 1.
    """
    check_fractions(fractions)
    from sklearn.datasets import load_digits

    data = load_digits()
    images = data.images.astype(np.float32) / 16.0  # (1797, 8, 8)
    labels = data.target.astype(np.int64)
    out = []
    for p in stratified_indices(labels, fractions, seed):
        out += [torch.from_numpy(images[p]).unsqueeze(1), torch.from_numpy(labels[p])]
    return DigitsSplit(*out)
