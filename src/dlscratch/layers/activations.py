r"""Activation functions written from raw tensor ops.

Introduced in chapter 11 (Attention from scratch), where the softmax turns attention scores into
weights. Later chapters add the element-wise activations (GeLU, SwiGLU, ...) next to these.
"""

from __future__ import annotations

import torch

__all__ = ["softmax", "log_softmax"]


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Numerically stable softmax along ``dim``.

    .. math::

        \operatorname{softmax}(\mathbf{x})_i
        = \frac{e^{x_i}}{\sum_j e^{x_j}}
        = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}, \qquad m = \max_j x_j .

    Subtracting the maximum changes nothing mathematically (numerator and denominator are both
    multiplied by :math:`e^{-m}`) but keeps every exponent :math:`\le 0`, so ``exp`` cannot
    overflow and the largest term is exactly 1. Entries equal to :math:`-\infty` get weight 0;
    a slice whose entries are all :math:`-\infty` has no defined softmax and gives ``nan``.

    Derivation and plots: chapter 11, *Attention from scratch*.

    Args:
        x: logits, any shape.
        dim: the dimension that sums to one.

    Returns:
        Probabilities, same shape as ``x``.

    Shape:
        - x: :math:`(*)`
        - output: :math:`(*)`, same as ``x``
    """
    # the shift is a constant for the maths, so it needs no gradient
    m = x.amax(dim=dim, keepdim=True).detach()  # (*) with size 1 along dim
    e = torch.exp(x - m)  # (*), every entry in [0, 1]
    return e / e.sum(dim=dim, keepdim=True)


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    r"""Numerically stable log-softmax along ``dim``.

    .. math::

        \log \operatorname{softmax}(\mathbf{x})_i
        = x_i - m - \log \sum_j e^{x_j - m}, \qquad m = \max_j x_j .

    Computing ``log(softmax(x))`` in two steps underflows to ``-inf`` as soon as a probability
    drops below the smallest float; this log-sum-exp form stays finite for finite ``x``.

    Derivation: chapter 11, *Attention from scratch*.

    Args:
        x: logits, any shape.
        dim: the dimension along which the probabilities sum to one.

    Returns:
        Log-probabilities, same shape as ``x``.

    Shape:
        - x: :math:`(*)`
        - output: :math:`(*)`, same as ``x``
    """
    m = x.amax(dim=dim, keepdim=True).detach()  # (*) with size 1 along dim
    z = x - m  # (*), max entry is 0
    return z - torch.log(torch.exp(z).sum(dim=dim, keepdim=True))
