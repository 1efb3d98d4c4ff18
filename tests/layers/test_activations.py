"""softmax, log_softmax and the GELU against torch: values and every gradient, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers import gelu, log_softmax, softmax
from tests.helpers import assert_same_forward_backward


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 4, 6)])
@pytest.mark.parametrize("dim", [-1, 0])
def test_softmax_matches_torch(shape: tuple[int, ...], dim: int) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    assert_same_forward_backward(lambda t: softmax(t, dim=dim), lambda t: torch.softmax(t, dim=dim), [x])


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 4, 6)])
@pytest.mark.parametrize("dim", [-1, 0])
def test_log_softmax_matches_torch(shape: tuple[int, ...], dim: int) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    assert_same_forward_backward(lambda t: log_softmax(t, dim=dim), lambda t: torch.log_softmax(t, dim=dim), [x])


def test_huge_logits_stay_finite() -> None:
    x = torch.tensor([[1000.0, 0.0, -1000.0], [1e300, 1e300, -1e300]], dtype=torch.float64)
    p, lp = softmax(x), log_softmax(x)
    assert torch.isfinite(p).all() and torch.isfinite(lp).all()
    torch.testing.assert_close(p, torch.softmax(x, dim=-1))
    torch.testing.assert_close(lp, torch.log_softmax(x, dim=-1))
    # the naive formula overflows where ours does not
    assert torch.isnan(torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)).any()
    assert_same_forward_backward(softmax, lambda t: torch.softmax(t, dim=-1), [x[:1]])
    assert_same_forward_backward(log_softmax, lambda t: torch.log_softmax(t, dim=-1), [x[:1]])


def test_minus_inf_gets_zero_weight() -> None:
    x = torch.tensor([0.0, float("-inf"), 1.0], dtype=torch.float64)
    p = softmax(x)
    assert p[1] == 0 and torch.isclose(p.sum(), torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(p, torch.softmax(x, dim=-1))


def test_rows_sum_to_one_and_shift_invariant() -> None:
    x = torch.randn(4, 9, dtype=torch.float64)
    p = softmax(x)
    torch.testing.assert_close(p.sum(-1), torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(softmax(x + 123.0), p)
    torch.testing.assert_close(log_softmax(x).exp(), p)


# ---- the GELU (chapter 20)
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 4, 6)])
def test_gelu_matches_torch(approximate: str, shape: tuple[int, ...]) -> None:
    x = torch.randn(shape, dtype=torch.float64) * 3  # reaches well into both tails
    assert_same_forward_backward(lambda t: gelu(t, approximate), lambda t: F.gelu(t, approximate=approximate), [x])


def test_gelu_tanh_is_close_to_exact_and_errors() -> None:
    x = torch.linspace(-8, 8, 20001, dtype=torch.float64)
    gap = (gelu(x) - gelu(x, "tanh")).abs().max().item()
    assert 1e-4 < gap < 5e-4  # the approximation is close, not exact
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got approximate='erf'"):
        gelu(x, "erf")


def test_quick_gelu_matches_transformers_and_stays_near_gelu() -> None:
    from dlscratch.layers import quick_gelu
    from dlscratch.layers.feedforward import ACTIVATIONS

    activations = pytest.importorskip("transformers.activations")
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)
    assert_same_forward_backward(quick_gelu, activations.ACT2FN["quick_gelu"], [x])
    assert ACTIVATIONS["quick_gelu"] is quick_gelu
    assert (quick_gelu(x) - F.gelu(x)).abs().max().item() < 0.03
