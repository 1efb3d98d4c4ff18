"""Inverted dropout: expectation preserved, identity in eval, gradients through the same mask."""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers.dropout import Dropout


def test_expectation_and_mask_statistics() -> None:
    drop = Dropout(0.3)
    x = torch.ones(200_000, dtype=torch.float64)
    y = drop(x)
    kept = y != 0
    assert abs(kept.double().mean().item() - 0.7) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert abs(y.mean().item() - 1.0) < 0.01


def test_gradient_uses_the_same_mask() -> None:
    drop = Dropout(0.5)
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).double() * 2.0)


def test_eval_and_p_zero_are_identity() -> None:
    x = torch.randn(10, 4)
    assert torch.equal(Dropout(0.0)(x), x)
    drop = Dropout(0.9).eval()
    assert torch.equal(drop(x), x)


def test_same_distribution_as_torch() -> None:
    torch.manual_seed(0)
    ours = Dropout(0.25)(torch.ones(100_000))
    theirs = torch.nn.functional.dropout(torch.ones(100_000), 0.25)
    assert abs((ours != 0).float().mean() - (theirs != 0).float().mean()) < 0.01
    assert set(ours.unique().tolist()) == set(theirs.unique().tolist())


@pytest.mark.parametrize("p", [-0.1, 1.0, 2])
def test_bad_probability(p: float) -> None:
    with pytest.raises(ValueError, match=str(p)):
        Dropout(p)


def test_functional_dropout_is_the_layer() -> None:
    from dlscratch.layers import Dropout, dropout

    x = torch.randn(4000, 50)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0) is x
    torch.manual_seed(3)
    a = dropout(x, 0.3)
    torch.manual_seed(3)
    b = Dropout(0.3).train()(x)
    assert torch.equal(a, b)  # the layer is the function
    kept = a != 0
    assert abs(kept.double().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(a[kept], x[kept] / 0.7)
