r"""Activation functions written from raw tensor ops.

Introduced in chapter 11 (Attention from scratch), where the softmax turns attention scores into
weights; chapter 20 (Normalization and activations) adds the GELU, exact and in its tanh
approximation; chapter 34 (CLIP) the quick GELU. (The feed-forward layers run PyTorch's kernels for the same functions:
:data:`dlscratch.layers.feedforward.ACTIVATIONS`.)
"""

from __future__ import annotations

import math

import torch

__all__ = ["softmax", "log_softmax", "gelu", "quick_gelu"]


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


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    r"""The Gaussian error linear unit (Hendrycks & Gimpel, 2016), exact or tanh-approximated.

    .. math::

        \operatorname{GELU}(x) = x\,\Phi(x) = \frac{x}{2}\left(1 + \operatorname{erf}\frac{x}{\sqrt 2}\right)
        \approx \frac{x}{2}\left(1 + \tanh\!\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right)\right)

    :math:`\Phi` is the standard normal CDF: the input is kept with the probability that a
    standard normal variable lies below it. ``approximate="tanh"`` is the second form, GPT-2's
    (and ``F.gelu(x, approximate="tanh")``); the two differ by less than :math:`5 \times 10^{-4}`.
    Chapter 20.

    Args:
        x: any shape.
        approximate: ``"none"`` (the erf form) or ``"tanh"``.

    Shape:
        - x: :math:`(*)`; output: same shape
    """
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if approximate == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))
    raise ValueError(f"approximate must be 'none' or 'tanh', got approximate={approximate!r}")


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    r"""The sigmoid approximation of the GELU that OpenAI's CLIP trained with (Hendrycks & Gimpel, 2016).

    .. math::

        \operatorname{QuickGELU}(x) = x\,\sigma(1.702\,x) \approx x\,\Phi(x)

    :math:`\sigma(1.702 x)` stays within 0.02 of the normal CDF :math:`\Phi(x)`. Hugging Face's
    ``hidden_act="quick_gelu"``, the default of its ``CLIPConfig``. Chapter 34.

    Shape:
        - x: :math:`(*)`; output: same shape
    """
    return x * torch.sigmoid(1.702 * x)
