r"""Exercise checkers for chapter 9, "Convolutional networks and ResNet" (topic prefix ``cnn.``).

Every checker recomputes the answer with torch or the package's tested code (autograd through
``F.conv2d``, ``F.unfold``, :func:`~dlscratch.layers.unfold2d`, :func:`~dlscratch.layers.max_pool2d`) and raises
:class:`AssertionError` with a hint when the reader's answer differs. The reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..layers.conv import unfold2d
from ..layers.pooling import max_pool2d
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "IM2COL_CASE",
    "POOL_CASE",
    "RECEPTIVE_STACK",
    "check_im2col_memory",
    "check_maxpool_grad",
    "check_receptive_field",
    "check_im2col",
    "im2col_ratio",
    "pool_grad_fraction",
]

# cnn.im2col_memory: (input shape, kernel, stride, padding) of the convolution whose columns are counted
IM2COL_CASE = ((8, 16, 32, 32), 3, 2, 1)
# cnn.maxpool_grad: (kernel, stride, padding) of the max pooling
POOL_CASE = (3, 2, 1)

# cnn.receptive_field: (kind, kernel, stride, dilation) of each layer, input first; convs are padded
RECEPTIVE_STACK = (
    ("conv", 3, 1, 1),
    ("maxpool", 2, 2, 1),
    ("conv", 3, 1, 1),
    ("conv", 3, 1, 2),
)


def im2col_ratio() -> float:
    r"""Elements of the package's ``unfold2d`` columns over elements of the input, for :data:`IM2COL_CASE`."""
    shape, k, stride, padding = IM2COL_CASE
    x = torch.zeros(shape)
    return unfold2d(x, k, stride=stride, padding=padding).numel() / x.numel()


@exercise("cnn.im2col_memory")
def check_im2col_memory(answer: Any) -> None:
    r"""How many times more memory the im2col matrix of a 3x3, stride-2, padding-1 convolution takes than its input."""
    got = require_number(answer, "the ratio of the sizes")
    want = im2col_ratio()
    shape, k, stride, padding = IM2COL_CASE
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if math.isclose(got, k * k, rel_tol=1e-3):
        raise AssertionError(
            f"{k * k} is the ratio at stride 1: every input pixel is copied into k * k = {k * k} columns. With stride "
            f"{stride} there are fewer output positions, hence fewer columns."
        )
    if math.isclose(got, k * k / stride, rel_tol=1e-3):
        raise AssertionError("the stride applies along both axes: the number of output positions drops by stride^2.")
    if math.isclose(got, 1 / (stride * stride), rel_tol=1e-3):
        raise AssertionError("that is the ratio of output to input positions; each column holds C * k * k values, not C.")
    raise AssertionError(
        f"measure it: unfold2d(x, {k}, stride={stride}, padding={padding}).numel() / x.numel() for x of shape {shape}."
    )


def pool_grad_fraction(seed: int = 0) -> float:
    r"""The fraction of input pixels that get a nonzero gradient through the package's ``max_pool2d`` with :data:`POOL_CASE`."""
    k, stride, padding = POOL_CASE
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 4, 32, 32, generator=gen).requires_grad_()
    max_pool2d(x, k, stride=stride, padding=padding).sum().backward()
    return (x.grad != 0).float().mean().item()


@exercise("cnn.maxpool_grad")
def check_maxpool_grad(answer: Any) -> None:
    r"""The fraction of input pixels that receive gradient through a 3x3, stride-2, padding-1 max pooling of random images."""
    got = require_number(answer, "the fraction of input pixels")
    want = pool_grad_fraction()
    k, stride, _ = POOL_CASE
    if math.isclose(got, want, abs_tol=0.01):
        return
    if math.isclose(got, 1 / stride**2, abs_tol=0.005):
        raise AssertionError(
            f"1/{stride**2} would be one distinct winner per window. The {k}x{k} windows overlap, and two neighbouring "
            "windows often pick the same pixel: then there are fewer winners than windows."
        )
    if math.isclose(got, 1 / k**2, abs_tol=0.005):
        raise AssertionError(f"1/{k * k} is one pixel per window, as if the windows tiled the image; with stride {stride} there are more windows than that.")
    if got > 0.9:
        raise AssertionError("that is average pooling, which spreads the gradient over the window; max pooling sends it to the arg-max only.")
    raise AssertionError(
        f"measure it: x = torch.randn(8, 4, 32, 32, requires_grad=True), max_pool2d(x, {k}, stride={stride}, padding=1).sum()"
        ".backward(), then the fraction of x.grad that is nonzero."
    )


def _receptive_field() -> int:
    r"""Side of the input region one central output pixel depends on, read off a gradient.

    Max pooling is replaced by average pooling: same windows, but every input of a window gets
    gradient, as the receptive field counts every input the max could pick.
    """
    size = 64
    x = torch.ones(1, 1, size, size, requires_grad=True)
    h = x
    for kind, k, s, d in RECEPTIVE_STACK:
        if kind == "conv":
            h = F.conv2d(h, torch.ones(1, 1, k, k), stride=s, padding=d * (k - 1) // 2, dilation=d)
        else:
            h = F.avg_pool2d(h, k, s)
    c = h.shape[-1] // 2
    h[0, 0, c, c].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()  # input rows that got gradient
    return int(rows.max() - rows.min() + 1)


@exercise("cnn.receptive_field")
def check_receptive_field(answer: Any) -> None:
    r"""The side length of the receptive field of one output pixel of ``RECEPTIVE_STACK``."""
    got = require_number(answer, "the receptive field (a side length in pixels)")
    want = _receptive_field()
    if got == want:
        return
    kernels_sum = sum(k for _, k, _, _ in RECEPTIVE_STACK)
    if got == kernels_sum - len(RECEPTIVE_STACK) + 1:
        raise AssertionError("that ignores the stride of the pooling and the dilation: after a stride-2 layer, "
                             "one step of a later kernel moves 2 input pixels.")
    raise AssertionError("work from the output back to the input: a layer with kernel k, stride s and dilation d "
                         "turns a field of r pixels into one of (r - 1) * s + d * (k - 1) + 1.")


@exercise("cnn.im2col")
def check_im2col(answer: Any) -> None:
    r"""``answer(x, k)`` must return ``F.unfold(x, k)`` (stride 1, no padding) for images ``(B, C, H, W)``."""
    require_callable(answer, "my_im2col")
    gen = torch.Generator().manual_seed(9)
    for shape, k in [((2, 3, 5, 6), 3), ((1, 1, 4, 4), 2), ((2, 2, 3, 7), 1), ((1, 4, 6, 5), 3)]:
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        want = F.unfold(x, k)  # (B, C*k*k, L)
        got = answer(x.clone(), k)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a torch.Tensor, got {type(got).__name__}.")
        if tuple(got.shape) != tuple(want.shape):
            raise AssertionError(
                f"for x of shape {shape} and k={k} the columns should have shape (B, C*k*k, L) = {tuple(want.shape)}, "
                f"got {tuple(got.shape)}."
            )
        got = got.detach().cpu().to(torch.float64)
        if torch.allclose(got, want):
            continue
        if torch.allclose(got.sort(dim=1).values, want.sort(dim=1).values):
            raise AssertionError("each column holds the right values in the wrong order: rows run over the channel "
                                 "first, then the kernel row, then the kernel column.")
        raise AssertionError(f"wrong values for x of shape {shape}, k={k}: column l = i * W_out + j must hold the "
                             "k x k window whose top-left corner is (i, j), for every channel.")
