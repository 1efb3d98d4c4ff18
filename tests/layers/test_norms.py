"""Batch norm (nn.Module) vs torch.nn.BatchNorm1d/2d: train and eval, running statistics, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlscratch.layers.norms import BatchNorm1d, BatchNorm2d
from tests.helpers import assert_same_forward_backward

CASES = [
    (BatchNorm1d, nn.BatchNorm1d, (16, 5)),
    (BatchNorm1d, nn.BatchNorm1d, (4, 3, 7)),
    (BatchNorm1d, nn.BatchNorm1d, (2, 1)),
    (BatchNorm2d, nn.BatchNorm2d, (4, 3, 5, 6)),
    (BatchNorm2d, nn.BatchNorm2d, (1, 2, 3, 1)),
]


def _pair(ours_cls, ref_cls, C: int, momentum: float = 0.1):
    ours = ours_cls(C, momentum=momentum).double()
    ref = ref_cls(C, momentum=momentum).double()
    with torch.no_grad():
        ours.weight.copy_(torch.randn(C))
        ours.bias.copy_(torch.randn(C))
    ref.load_state_dict(ours.state_dict())  # same names: ours loads into torch's
    return ours, ref


@pytest.mark.parametrize(("ours_cls", "ref_cls", "shape"), CASES)
def test_train_mode_forward_backward_and_running_stats(ours_cls, ref_cls, shape) -> None:
    ours, ref = _pair(ours_cls, ref_cls, shape[1], momentum=0.3)
    for _ in range(3):  # several steps: running statistics accumulate identically
        x = torch.randn(shape, dtype=torch.float64) * 3 + 1
        assert_same_forward_backward(ours, ref, [x])
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name))
    ours.zero_grad(), ref.zero_grad()
    x = torch.randn(shape, dtype=torch.float64)
    (ours(x) ** 3).sum().backward()
    (ref(x) ** 3).sum().backward()
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)


@pytest.mark.parametrize(("ours_cls", "ref_cls", "shape"), CASES)
def test_eval_mode_uses_running_stats(ours_cls, ref_cls, shape) -> None:
    ours, ref = _pair(ours_cls, ref_cls, shape[1])
    ours(torch.randn(shape, dtype=torch.float64) + 2)
    ref.load_state_dict(ours.state_dict())
    ours.eval(), ref.eval()
    x = torch.randn(shape, dtype=torch.float64)
    assert_same_forward_backward(ours, ref, [x])
    before = ours.running_mean.clone()
    ours(x)
    torch.testing.assert_close(ours.running_mean, before)  # eval does not update


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=r"4 channels in dim 1, got shape \(2, 3\)"):
        BatchNorm1d(4)(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"got shape \(2, 3\)"):
        BatchNorm2d(3)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1d(3)(torch.randn(1, 3))
    with pytest.raises(ValueError, match="-2"):
        BatchNorm1d(-2)
    with pytest.raises(ValueError, match="1.5"):
        BatchNorm2d(3, momentum=1.5)
