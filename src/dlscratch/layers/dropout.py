r"""Inverted dropout, written from tensor operations.

In training mode every element is kept with probability :math:`1 - p` and scaled by
:math:`1/(1 - p)`, so that the expected activation is unchanged and evaluation needs no
rescaling:

.. math::

    y = \frac{m \odot x}{1 - p}, \qquad m_i \sim \operatorname{Bernoulli}(1 - p),
    \qquad \mathbb{E}[y] = x .

In evaluation mode the layer is the identity. Introduced in chapter 6 (deep networks).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["dropout", "Dropout"]


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    r"""Inverted dropout as a function: :math:`m \odot x / (1 - p)` in training, :math:`x` otherwise.

    Shape:
        - x: any shape; output: same
    """
    if not training or p == 0.0:
        return x
    keep = torch.rand_like(x) >= p  # Bernoulli(1 - p) mask
    return x * keep / (1.0 - p)


class Dropout(nn.Module):
    r"""Inverted dropout with drop probability ``p``: :func:`dropout` as a layer.

    Shape:
        - input: any shape
        - output: same as the input
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
