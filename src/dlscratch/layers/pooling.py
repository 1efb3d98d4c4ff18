r"""Max and average pooling from the same sliding windows as the convolution.

Pooling reduces each :math:`k_H \times k_W` window of every channel to one number:

.. math::

    y^\text{max}_{b,c,i,j} = \max_{u,v} \tilde x_{b,c,\, s i + u,\; s j + v}, \qquad
    y^\text{avg}_{b,c,i,j} = \frac{1}{k_H k_W} \sum_{u,v} \tilde x_{b,c,\, s i + u,\; s j + v},

where :math:`\tilde x` is the input padded with :math:`-\infty` (max) or zeros (average; the
padding counts in the mean, as ``count_include_pad=True`` in PyTorch). Introduced in chapter 9
(convolutional networks and ResNet).
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import IntPair, _pair, sliding_windows

__all__ = ["max_pool2d", "avg_pool2d", "MaxPool2d", "AvgPool2d"]


def _pool_windows(
    x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None, padding: IntPair, pad_value: float
) -> torch.Tensor:
    r"""The pooling windows of ``x`` flattened: ``(B, C, k_H k_W, H_out, W_out)``."""
    if x.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    stride = (kh, kw) if stride is None else stride  # default: non-overlapping windows
    ph, pw = _pair(padding, "padding", 0)
    if 2 * ph > kh or 2 * pw > kw:  # a window made only of padding would have no input in it
        raise ValueError(f"padding must be at most half the kernel size, got padding {padding!r} for kernel {kernel_size!r}")
    win = sliding_windows(x, (kh, kw), stride, (ph, pw), 1, pad_value)  # (B, C, kh, kw, oh, ow)
    return win.flatten(2, 3)  # (B, C, kh*kw, oh, ow)


def max_pool2d(x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> torch.Tensor:
    r"""Max pooling: the largest value of each window (padding never wins: it is :math:`-\infty`).

    The gradient flows only to the arg-max of each window (with ties, to one of them).

    Args:
        x: images ``(B, C, H, W)``.
        kernel_size: window size, an int or an ``(H, W)`` pair.
        stride: step between windows; ``kernel_size`` when omitted.
        padding: implicit :math:`-\infty` padding on each side, at most half the kernel.

    Shape:
        - x: :math:`(B, C, H, W)`
        - output: :math:`(B, C, H_\text{out}, W_\text{out})`
    """
    return _pool_windows(x, kernel_size, stride, padding, float("-inf")).max(dim=2).values  # (B, C, oh, ow)


def avg_pool2d(x: torch.Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> torch.Tensor:
    r"""Average pooling: the mean of each window, zero padding included in the count.

    Args:
        x: images ``(B, C, H, W)``.
        kernel_size: window size, an int or an ``(H, W)`` pair.
        stride: step between windows; ``kernel_size`` when omitted.
        padding: implicit zero padding on each side, at most half the kernel.

    Shape:
        - x: :math:`(B, C, H, W)`
        - output: :math:`(B, C, H_\text{out}, W_\text{out})`
    """
    return _pool_windows(x, kernel_size, stride, padding, 0.0).mean(dim=2)  # (B, C, oh, ow)


class MaxPool2d(nn.Module):
    r"""Module wrapper of :func:`max_pool2d`.

    Shape:
        - input: :math:`(B, C, H, W)`
        - output: :math:`(B, C, H_\text{out}, W_\text{out})`
    """

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(nn.Module):
    r"""Module wrapper of :func:`avg_pool2d`.

    Shape:
        - input: :math:`(B, C, H, W)`
        - output: :math:`(B, C, H_\text{out}, W_\text{out})`
    """

    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
