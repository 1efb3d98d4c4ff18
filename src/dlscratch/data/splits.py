r"""One stratified, seeded split, shared by every labelled data set of the book."""

from __future__ import annotations

import numpy as np

__all__ = ["check_fractions", "stratified_indices"]


def check_fractions(fractions: tuple[float, ...]) -> None:
    r"""Raise ``ValueError`` unless ``fractions`` are positive and sum to 1."""
    if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")


def stratified_indices(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    r"""Indices of each part of a stratified split.

    Every class :math:`c` is shuffled on its own and cut into parts of
    :math:`\operatorname{round}(f_k\,n_c)` items (the last part takes the rest), so each part has
    the class proportions of the whole set to within one item per class. Each part is then shuffled,
    so classes are interleaved.

    Args:
        labels: ``(N,)`` integer class labels.
        fractions: the size of each part, positive, summing to 1.
        seed: seed of the NumPy generator that does all the shuffling.

    Returns:
        One ``int64`` index array per fraction.
    """
    check_fractions(fractions)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for k, f in enumerate(fractions):
            stop = len(idx) if k == len(fractions) - 1 else start + round(f * len(idx))
            parts[k] += idx[start:stop].tolist()
            start = stop
    return [rng.permutation(np.array(p, dtype=np.int64)) for p in parts]
