r"""Batch normalisation as ``nn.Module`` layers, written from tensor operations.

For a mini-batch, batch norm standardises every channel with the batch statistics and then
applies a learned affine map:

.. math::

    \mu_c = \frac{1}{m}\sum_{i} x_{ic}, \qquad
    \sigma_c^2 = \frac{1}{m}\sum_{i} (x_{ic} - \mu_c)^2, \qquad
    y_{ic} = \gamma_c \frac{x_{ic} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c,

where :math:`i` runs over every position that shares channel :math:`c` (the batch for
``(N, C)``; batch and length for ``(N, C, L)``; batch, height and width for ``(N, C, H, W)``)
and :math:`m` counts them. In training mode the running estimates are updated as

.. math::

    \hat\mu \leftarrow (1 - \alpha)\hat\mu + \alpha\mu, \qquad
    \hat\sigma^2 \leftarrow (1 - \alpha)\hat\sigma^2 + \alpha \frac{m}{m - 1}\sigma^2

(the unbiased variance, as in PyTorch), and evaluation mode normalises with them instead.
Parameter and buffer names follow ``torch.nn.BatchNorm*d`` so a state dict loads into either.
Introduced in chapter 6 (deep networks) and used by the CNNs of chapter 9.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(nn.Module):
    r"""Shared implementation; subclasses fix which input ranks are accepted."""

    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        if num_features <= 0:
            raise ValueError(f"num_features must be positive, got {num_features}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))  # gamma
        self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in self._ranks or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects input of rank {self._ranks} with "
                f"{self.num_features} channels in dim 1, got shape {tuple(x.shape)}"
            )
        dims = [0, *range(2, x.dim())]  # every axis except the channels
        shape = [1, -1] + [1] * (x.dim() - 2)  # broadcast (C,) against x
        if self.training:
            m = x.numel() // self.num_features
            if m < 2:
                raise ValueError(f"batch norm needs more than one value per channel in training, got shape {tuple(x.shape)}")
            mean = x.mean(dim=dims)  # (C,)
            var = x.var(dim=dims, unbiased=False)  # (C,) biased: used to normalise
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * m / (m - 1), self.momentum)
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    r"""Batch norm over ``(N, C)`` or ``(N, C, L)`` inputs (statistics per channel ``C``).

    Shape:
        - input: :math:`(N, C)` or :math:`(N, C, L)`
        - output: same as the input
    """

    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    r"""Batch norm over images ``(N, C, H, W)`` (statistics per channel over batch, height, width).

    Shape:
        - input: :math:`(N, C, H, W)`
        - output: same as the input
    """

    _ranks = (4,)
