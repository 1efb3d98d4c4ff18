"""time_forward_backward: one number per candidate, and the work it times is a full training step."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.layers import LayerNorm, RMSNorm
from dlscratch.training.cost import forward_backward, time_forward_backward


def test_forward_backward_computes_every_gradient_afresh() -> None:
    norm = RMSNorm(5)
    x = torch.randn(3, 5, requires_grad=True)
    g = torch.randn(3, 5)
    forward_backward(norm, x, g)
    first = x.grad.clone(), norm.weight.grad.clone()
    forward_backward(norm, x, g)  # cleared first: not accumulated
    torch.testing.assert_close(x.grad, first[0])
    torch.testing.assert_close(norm.weight.grad, first[1])


def test_time_forward_backward_returns_a_time_per_module() -> None:
    out = time_forward_backward({"ln": LayerNorm(8), "rms": RMSNorm(8)}, (4, 8), repeats=2)
    assert set(out) == {"ln", "rms"} and all(math.isfinite(t) and t > 0 for t in out.values())
    with pytest.raises(ValueError, match="repeats=0"):
        time_forward_backward({"ln": LayerNorm(8)}, (4, 8), repeats=0)
