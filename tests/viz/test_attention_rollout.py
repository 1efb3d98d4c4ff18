"""Attention rollout: the product of residual-mixed, head-averaged attention, against a loop and special cases."""

from __future__ import annotations

import pytest
import torch

from dlscratch.viz import attention_rollout


def random_weights(L: int, B: int, nh: int, T: int) -> list[torch.Tensor]:
    return [torch.randn(B, nh, T, T, dtype=torch.float64).softmax(-1) for _ in range(L)]


def test_equals_a_loop_over_layers_and_images() -> None:
    ws = random_weights(3, 2, 4, 5)
    got = attention_rollout(ws, residual=0.3)
    for b in range(2):
        r = torch.eye(5, dtype=torch.float64)
        for w in ws:
            r = (0.7 * w[b].mean(0) + 0.3 * torch.eye(5, dtype=torch.float64)) @ r
        torch.testing.assert_close(got[b], r)


def test_rows_sum_to_one_and_special_cases() -> None:
    ws = random_weights(4, 3, 2, 6)
    torch.testing.assert_close(attention_rollout(ws).sum(-1), torch.ones(3, 6, dtype=torch.float64))
    torch.testing.assert_close(attention_rollout(ws, residual=1.0), torch.eye(6, dtype=torch.float64).expand(3, 6, 6))
    torch.testing.assert_close(attention_rollout(ws[:1], residual=0.0), ws[0].mean(1))  # one layer, no residual: the mean map


@pytest.mark.parametrize(("ws", "kwargs", "match"), [
    ([], {}, "at least one layer"),
    ([torch.rand(1, 2, 3, 3)], {"residual": 1.5}, "residual must be in \\[0, 1\\], got 1.5"),
    ([torch.rand(1, 2, 3, 3), torch.rand(1, 2, 4, 4)], {}, "layer 1: expected weights \\(B, nh, T, T\\)"),
    ([torch.rand(2, 3, 3)], {}, "layer 0: expected weights"),
])
def test_bad_input_is_refused(ws: list, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        attention_rollout(ws, **kwargs)
