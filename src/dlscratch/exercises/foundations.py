r"""Exercise checkers for Part I, Foundations (chapter 1, "PyTorch essentials").

Every checker recomputes the answer independently (with torch's own routines) and raises
:class:`AssertionError` with a hint when the reader's answer differs. The reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .core import exercise

__all__ = [
    "BROADCAST_SHAPES",
    "STRIDES_SHAPE",
    "STRIDES_PERMUTATION",
    "check_broadcast_shape",
    "check_strides",
    "check_logsumexp",
    "check_param_count",
    "param_count_model",
]

# essentials.broadcast_shape: the shapes of `torch.zeros(*a) + torch.zeros(*b)`
BROADCAST_SHAPES = ((8, 1, 6, 1), (7, 1, 5))
# essentials.strides: `torch.arange(24).view(*STRIDES_SHAPE).permute(*STRIDES_PERMUTATION)`
STRIDES_SHAPE = (2, 3, 4)
STRIDES_PERMUTATION = (2, 0, 1)


def _as_int_tuple(answer: Any, what: str) -> tuple[int, ...]:
    if isinstance(answer, (int, float, str)) or not hasattr(answer, "__iter__"):
        raise AssertionError(f"give the {what} as a tuple of ints, e.g. (2, 3), not {answer!r}.")
    items = list(answer)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise AssertionError(f"every entry of the {what} must be a Python int, got {answer!r}.")
    return tuple(items)


@exercise("essentials.broadcast_shape")
def check_broadcast_shape(answer: Any) -> None:
    r"""The shape of ``torch.zeros(8, 1, 6, 1) + torch.zeros(7, 1, 5)``."""
    a, b = BROADCAST_SHAPES
    got = _as_int_tuple(answer, "shape")
    want = tuple(torch.broadcast_shapes(a, b))
    if len(got) != len(want):
        raise AssertionError(
            f"the result has {len(want)} dimensions, you gave {len(got)}. Line the shapes up "
            "from the right; the shorter one is padded with 1s on the left."
        )
    if got != want:
        raise AssertionError(
            "compare the shapes dimension by dimension from the right: where one size is 1, "
            "the other size wins."
        )


@exercise("essentials.strides")
def check_strides(answer: Any) -> None:
    r"""The strides of ``torch.arange(24).view(2, 3, 4).permute(2, 0, 1)``."""
    got = _as_int_tuple(answer, "strides")
    want = torch.arange(24).view(*STRIDES_SHAPE).permute(*STRIDES_PERMUTATION).stride()
    if len(got) != len(want):
        raise AssertionError(f"the permuted tensor has {len(want)} dimensions, so it has {len(want)} strides.")
    contiguous = torch.arange(24).view(*STRIDES_SHAPE).stride()
    if got == contiguous:
        raise AssertionError(
            "those are the strides before the permute. permute moves strides along with their "
            "dimensions; it never copies the data."
        )
    if got != want:
        raise AssertionError(
            "first find the strides of the contiguous (2, 3, 4) view (the last dimension has "
            "stride 1), then reorder them with the permutation."
        )


@exercise("essentials.logsumexp")
def check_logsumexp(answer: Any) -> None:
    r"""A function ``logsumexp(x, dim)`` that stays finite for large inputs."""
    if not callable(answer):
        raise AssertionError(f"pass your function itself, e.g. check(..., logsumexp), not {answer!r}.")
    fn: Callable[[torch.Tensor, int], torch.Tensor] = answer
    gen = torch.Generator().manual_seed(0)
    cases = [
        (torch.randn(4, 7, generator=gen, dtype=torch.float64), -1, "small random logits"),
        (torch.randn(3, 5, 6, generator=gen, dtype=torch.float64), 1, "a reduction over dim=1"),
        (1000.0 + torch.randn(4, 7, generator=gen, dtype=torch.float64), -1, "large logits (around 1000)"),
        (-1000.0 + torch.randn(4, 7, generator=gen, dtype=torch.float64), 0, "very negative logits (around -1000)"),
        (torch.tensor([[0.0, 800.0, -800.0]], dtype=torch.float32), -1, "float32 logits spanning ±800"),
    ]
    for x, dim, name in cases:
        got = fn(x.clone(), dim)
        want = torch.logsumexp(x, dim=dim)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a tensor, got {type(got).__name__} on {name}.")
        if got.shape != want.shape:
            raise AssertionError(
                f"on {name} (input shape {tuple(x.shape)}, dim={dim}) the output should have shape "
                f"{tuple(want.shape)}, got {tuple(got.shape)}. Reduce over `dim` only, and squeeze it away."
            )
        if not torch.isfinite(got).all():
            raise AssertionError(
                f"your function returns inf or nan on {name}: exp overflows. Subtract the maximum "
                "along `dim` before exponentiating and add it back after the log."
            )
        if not torch.allclose(got.to(want.dtype), want, rtol=1e-5, atol=1e-5):
            raise AssertionError(
                f"wrong values on {name} (max error "
                f"{(got.to(want.dtype) - want).abs().max().item():.3g}). Check that you add the "
                "maximum back after the log, and that the max is taken along `dim` with keepdim=True."
            )


def param_count_model() -> nn.Module:
    r"""The model of exercise ``essentials.param_count``: ``Linear(10, 32)``, ReLU, ``Linear(32, 4)``."""
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))


@exercise("essentials.param_count")
def check_param_count(answer: Any) -> None:
    r"""The number of trainable parameters of :func:`param_count_model`."""
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise AssertionError(f"give the count as a Python int, got {answer!r}.")
    model = param_count_model()
    want = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weights_only = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    if answer == weights_only:
        raise AssertionError("close: you counted the weight matrices but not the bias vectors.")
    if answer != want:
        raise AssertionError(
            "a Linear(n_in, n_out) layer holds an (n_out, n_in) weight and an n_out bias; ReLU has "
            "no parameters."
        )
