r"""Exercise checkers for chapter 9, "Convolutional networks and ResNet" (topic prefix ``cnn.``).

Every checker recomputes the answer independently (counting positions by brute force, torch's
own ``nn.Conv2d``, ``F.unfold`` and autograd, never the chapter's functions) and raises
:class:`AssertionError` with a hint when the reader's answer differs. The reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .answers import require_number
from .core import exercise

__all__ = [
    "CONV_PARAMS_LAYER",
    "RECEPTIVE_STACK",
    "check_output_size",
    "check_conv_params",
    "check_receptive_field",
    "check_im2col",
]

# cnn.conv_params: how many parameters does this layer have?
CONV_PARAMS_LAYER = dict(in_channels=16, out_channels=32, kernel_size=(5, 3), bias=True)

# cnn.receptive_field: (kind, kernel, stride, dilation) of each layer, input first; convs are padded
RECEPTIVE_STACK = (
    ("conv", 3, 1, 1),
    ("maxpool", 2, 2, 1),
    ("conv", 3, 1, 1),
    ("conv", 3, 1, 2),
)


def _brute_force_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    span = dilation * (kernel - 1) + 1  # input positions one window covers
    return sum(1 for start in range(0, size + 2 * padding, stride) if start + span <= size + 2 * padding)


@exercise("cnn.output_size")
def check_output_size(answer: Any) -> None:
    r"""``answer(size, kernel, stride, padding, dilation)`` must return the number of output positions."""
    if not callable(answer):
        raise AssertionError(f"pass your function itself (out_size), not {type(answer).__name__}.")
    cases = [  # (size, kernel, stride, padding, dilation)
        (8, 3, 1, 0, 1), (8, 3, 1, 1, 1), (9, 3, 2, 1, 1), (8, 3, 2, 0, 1),
        (10, 3, 1, 0, 3), (11, 4, 3, 2, 2), (5, 5, 1, 0, 1), (7, 1, 2, 0, 1),
    ]
    for size, k, s, p, d in cases:
        got = answer(size, k, s, p, d)
        want = _brute_force_size(size, k, s, p, d)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, float) and not got.is_integer():
            raise AssertionError(f"out_size({size}, {k}, {s}, {p}, {d}) = {got} is not a whole number: round down (//).")
        if got == want:
            continue
        hint = f"out_size(size={size}, kernel={k}, stride={s}, padding={p}, dilation={d}) should be {want}, got {got}."
        if d > 1 and got == _brute_force_size(size, k, s, p, 1):
            hint += " A dilated kernel spans d(k - 1) + 1 input positions, not k."
        elif p > 0 and got == _brute_force_size(size, k, s, 0, d):
            hint += " Padding adds p positions on both sides."
        else:
            hint += " Count where the first window starts, how far the last one can start, and the step between."
        raise AssertionError(hint)


@exercise("cnn.conv_params")
def check_conv_params(answer: Any) -> None:
    r"""The number of learnable parameters of ``nn.Conv2d(**CONV_PARAMS_LAYER)``."""
    got = require_number(answer, "the parameter count")
    layer = nn.Conv2d(**CONV_PARAMS_LAYER)
    want = sum(p.numel() for p in layer.parameters())
    if got == want:
        return
    if got == layer.weight.numel():
        raise AssertionError("you counted the weights; every output channel also has a bias.")
    kh, kw = CONV_PARAMS_LAYER["kernel_size"]
    if got == CONV_PARAMS_LAYER["out_channels"] * (kh * kw + 1):
        raise AssertionError("each filter sees every input channel: its kernel has C_in x kH x kW weights.")
    raise AssertionError("count one (C_in, kH, kW) kernel per output channel, plus one bias per output channel.")


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
    if not callable(answer):
        raise AssertionError(f"pass your function itself (my_im2col), not {type(answer).__name__}.")
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
