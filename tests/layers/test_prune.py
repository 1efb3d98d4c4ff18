"""Pruning masks against torch.nn.utils.prune; 2:4 patterns; held masks; a shrunken SwiGLU equals the masked one."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from dlscratch.layers.feedforward import SwiGLU
from dlscratch.layers.prune import hold_masks, ln_structured_mask, magnitude_mask, n_m_mask, shrink_swiglu, sparsity


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("shape", [(16, 32), (5, 3, 3, 3), (7,)])
def test_magnitude_mask_equals_l1_unstructured(amount: float, shape: tuple[int, ...]) -> None:
    w = torch.randn(shape)
    layer = nn.Module()
    layer.weight = nn.Parameter(w.clone())
    prune.l1_unstructured(layer, "weight", amount=amount)
    assert torch.equal(magnitude_mask(w, amount), layer.weight_mask)


@pytest.mark.parametrize("amount, n, dim", [(0.25, 2, 0), (0.5, 1, 0), (0.5, 2, 1), (0.75, float("inf"), 0), (0.4, 2, -1)])
def test_ln_structured_mask_equals_ln_structured(amount: float, n: float, dim: int) -> None:
    w = torch.randn(8, 6, 3, 3)
    layer = nn.Module()
    layer.weight = nn.Parameter(w.clone())
    prune.ln_structured(layer, "weight", amount=amount, n=n, dim=dim)
    assert torch.equal(ln_structured_mask(w, amount, n, dim), layer.weight_mask)


def test_two_four_pattern() -> None:
    w = torch.randn(6, 16)
    mask = n_m_mask(w)
    groups = mask.reshape(-1, 4)
    assert (groups.sum(1) == 2).all()
    kept_min = (w.abs() * mask).reshape(-1, 4).masked_fill(groups == 0, float("inf")).amin(1)
    dropped_max = (w.abs() * (1 - mask)).reshape(-1, 4).amax(1)
    assert (kept_min >= dropped_max).all()  # the two largest of each four
    with pytest.raises(ValueError, match="m=4 does not divide the row of 10 weights"):
        n_m_mask(torch.randn(3, 10))
    with pytest.raises(ValueError, match="n <= m"):
        n_m_mask(w, 5, 4)


def test_bad_amount() -> None:
    with pytest.raises(ValueError, match=r"amount must be a fraction in \[0, 1\], got amount=1.5"):
        magnitude_mask(torch.randn(4), 1.5)


def test_held_masks_survive_adamw() -> None:
    lin = nn.Linear(16, 8)
    mask = magnitude_mask(lin.weight, 0.75)
    handles = hold_masks([(lin.weight, mask)])
    opt = torch.optim.AdamW(lin.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(5):
        opt.zero_grad()
        lin(torch.randn(4, 16)).pow(2).sum().backward()
        opt.step()
    assert sparsity([lin.weight]) == pytest.approx(0.75)
    assert torch.equal(lin.weight == 0, mask == 0)
    for h in handles:
        h.remove()


def test_shrunken_swiglu_equals_the_masked_one() -> None:
    mlp = SwiGLU(12, 20).double()
    keep = torch.tensor([0, 3, 4, 9, 15, 19])
    small = shrink_swiglu(mlp, keep)
    masked = SwiGLU(12, 20).double()
    masked.load_state_dict(mlp.state_dict())
    drop = torch.ones(20, dtype=torch.float64)
    drop[keep] = 0
    with torch.no_grad():
        masked.down.weight[:, drop.bool()] = 0
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    torch.testing.assert_close(small(x), masked(x))
    assert small.gate.weight.shape == (6, 12) and small.down.weight.shape == (12, 6)
