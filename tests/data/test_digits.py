"""The digits split: stratified, disjoint, deterministic, scaled."""

from __future__ import annotations

import pytest
import torch

from dlscratch.data import load_digits_split


def test_split_shapes_stratification_and_scaling() -> None:
    s = load_digits_split()
    assert s.x_train.shape[1:] == (1, 8, 8) and s.x_train.dtype == torch.float32
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == 1797
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    for y in (s.y_train, s.y_val, s.y_test):
        frac = y.bincount(minlength=10).double() / len(y)
        assert (frac - 0.1).abs().max() < 0.01  # every class about 10 % in every split


def test_split_is_deterministic_and_disjoint() -> None:
    a, b = load_digits_split(seed=0), load_digits_split(seed=0)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    rows = lambda x: {tuple(r) for r in x.flatten(1).tolist()}  # noqa: E731
    # no image is in two splits (the data set has no exact duplicates across these splits)
    assert not rows(a.x_train) & rows(a.x_test) and not rows(a.x_val) & rows(a.x_test)
    assert not torch.equal(load_digits_split(seed=1).y_train, a.y_train)


def test_bad_fractions() -> None:
    with pytest.raises(ValueError, match=r"\(0.5, 0.5, 0.5\)"):
        load_digits_split(fractions=(0.5, 0.5, 0.5))
