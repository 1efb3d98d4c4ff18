"""Chapter 30's in-context regressor: the prompt layout, causality (a prediction sees only the pairs before it), bad input."""

from __future__ import annotations

import pytest
import torch

from dlscratch.models.icl_regression import InContextRegressor, RegressionConfig, interleave


def test_interleave_layout() -> None:
    xs, ys = torch.randn(2, 3, 4), torch.randn(2, 3)
    z = interleave(xs, ys)
    assert z.shape == (2, 6, 5)
    torch.testing.assert_close(z[:, 0::2, :4], xs)
    torch.testing.assert_close(z[:, 1::2, 4], ys)
    assert (z[:, 0::2, 4] == 0).all() and (z[:, 1::2, :4] == 0).all()


@pytest.mark.parametrize("K", [1, 2, 7])
def test_prediction_sees_only_earlier_pairs(K: int) -> None:
    model = InContextRegressor(RegressionConfig(dim=3, n_points=7, n_layer=2, n_head=2, n_embd=16)).double()
    xs, ys = torch.randn(2, K, 3, dtype=torch.float64), torch.randn(2, K, dtype=torch.float64)
    base = model(xs, ys)
    assert base.shape == (2, K)
    i = K - 1
    ys2 = ys.clone()
    ys2[:, i] += 1.0  # y_i must not leak into its own prediction
    torch.testing.assert_close(model(xs, ys2), base)
    xs2 = xs.clone()
    xs2[:, i] += 1.0  # x_i changes prediction i, not the earlier ones
    changed = model(xs2, ys)
    torch.testing.assert_close(changed[:, :i], base[:, :i])
    assert (changed[:, i] - base[:, i]).abs().max() > 1e-8
    if K > 1:
        ys3 = ys.clone()
        ys3[:, 0] += 1.0  # y_1 reaches every later prediction
        assert (model(xs, ys3)[:, 1:] - base[:, 1:]).abs().min() > 0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="n_embd=10 must be divisible by n_head=4"):
        RegressionConfig(n_embd=10, n_head=4)
    with pytest.raises(ValueError, match="dim must be a positive integer, got 0"):
        RegressionConfig(dim=0)
    model = InContextRegressor(RegressionConfig(dim=3, n_points=4, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match=r"xs must be \(B, K, dim=3\), got shape \(1, 2, 4\)"):
        model(torch.zeros(1, 2, 4), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="K=5 points exceeds n_points=4"):
        model(torch.zeros(1, 5, 3), torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"expected xs \(B, K, d\) and ys \(B, K\)"):
        interleave(torch.zeros(1, 2, 3), torch.zeros(1, 3))
