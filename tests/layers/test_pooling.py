"""Max and average pooling vs F.max_pool2d / F.avg_pool2d: values, gradients, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.layers.pooling import AvgPool2d, MaxPool2d, avg_pool2d, max_pool2d
from tests.helpers import assert_same_forward_backward

# (B, C, H, W), kernel, stride, padding
CASES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 8, 8), 3, 1, 1),
    ((1, 2, 7, 9), 3, 2, 1),
    ((2, 1, 9, 6), (2, 3), (1, 2), (1, 1)),
    ((1, 1, 5, 5), 5, None, 0),  # one window covering everything
    ((3, 2, 7, 7), 2, None, 0),  # odd size: the last row/column is dropped
    ((1, 1, 1, 1), 1, None, 0),
]


def _no_ties(shape) -> torch.Tensor:
    # a random permutation of distinct values: every window has a unique maximum
    return torch.randperm(int(torch.tensor(shape).prod())).view(shape).double() / 7.0 - 3.0


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), CASES)
def test_max_pool_matches_torch(shape, kernel, stride, padding) -> None:
    assert_same_forward_backward(
        lambda x: max_pool2d(x, kernel, stride, padding),
        lambda x: F.max_pool2d(x, kernel, stride, padding),
        [_no_ties(shape)],
    )


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding"), CASES)
def test_avg_pool_matches_torch(shape, kernel, stride, padding) -> None:
    assert_same_forward_backward(
        lambda x: avg_pool2d(x, kernel, stride, padding),
        lambda x: F.avg_pool2d(x, kernel, stride, padding),
        [torch.randn(shape, dtype=torch.float64)],
    )


def test_max_pool_padding_never_wins() -> None:
    x = -torch.rand(1, 1, 4, 4, dtype=torch.float64) - 1  # all negative: a zero pad would win
    y = max_pool2d(x, 3, 2, 1)
    assert (y < 0).all()
    torch.testing.assert_close(y, F.max_pool2d(x, 3, 2, 1))


def test_modules_match_torch_modules() -> None:
    x = _no_ties((2, 3, 6, 6))
    assert_same_forward_backward(MaxPool2d(2), nn.MaxPool2d(2), [x])
    assert_same_forward_backward(AvgPool2d(3, 1, 1), nn.AvgPool2d(3, 1, 1), [x])


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d], ids=lambda f: f.__name__)
def test_errors(pool) -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), got shape \(3, 8, 8\)"):
        pool(torch.randn(3, 8, 8), 2)
    with pytest.raises(ValueError, match="spans 3 .* only 2"):
        pool(torch.randn(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match="stride must be positive, got 0"):
        pool(torch.randn(1, 1, 4, 4), 2, 0)
    with pytest.raises(ValueError, match="at most half the kernel size, got padding 2 for kernel 3"):
        pool(torch.randn(1, 1, 8, 8), 3, 1, 2)
