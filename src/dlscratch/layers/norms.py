r"""Normalisation layers written from tensor operations: batch norm, layer norm, RMS norm.

Batch norm (chapter 6) is the first part of this module; :class:`LayerNorm` (chapter 15) and
:class:`RMSNorm` (chapter 20), with their fused twins, follow it.

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
The maths is the pure function :func:`batch_norm`, shared with the plain-Python
:class:`dlscratch.layers.mini_nn.BatchNorm1d` of chapters 4 and 5. Introduced in chapter 6 (deep
networks) and used by the CNNs of chapter 9.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_positive_int

__all__ = [
    "batch_norm", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "FusedLayerNorm", "RMSNorm", "FusedRMSNorm", "NORMS", "make_norm",
]


def _per_channel(t: torch.Tensor, ndim: int) -> torch.Tensor:
    r"""View ``t`` of shape ``(C, *rest)`` as ``(1, C, *rest, 1, ...)``, to broadcast against a rank-``ndim`` input."""
    return t.reshape(1, *t.shape, *[1] * (ndim - 1 - t.dim()))


def _check_batch(x: torch.Tensor, n: int) -> None:
    if n < 2:
        raise ValueError(f"batch norm needs more than one value per channel in training, got shape {tuple(x.shape)}")


def batch_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
    dims: tuple[int, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Batch normalisation of ``x`` (channels in dim 1), as a pure function.

    In training mode the statistics are taken over ``dims`` (every dimension except the channels
    by default), each over :math:`m` entries:

    .. math::

        \mu = \frac{1}{m}\sum x, \qquad \sigma^2 = \frac{1}{m}\sum (x - \mu)^2, \qquad
        y = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta ,

    and the returned running statistics are
    :math:`(1 - \alpha)\hat\mu + \alpha\mu` and :math:`(1 - \alpha)\hat\sigma^2 + \alpha \frac{m}{m-1}\sigma^2`.
    In evaluation mode the running statistics replace the batch ones and are returned unchanged.
    Nothing is modified in place: the caller stores the new running statistics.

    Args:
        x: input with the channels in dim 1.
        weight: :math:`\gamma`, shape ``(C,)``.
        bias: :math:`\beta`, shape ``(C,)``.
        running_mean: :math:`\hat\mu`, shape ``(C,)`` (or ``(C, *rest)`` when ``dims`` keeps more axes).
        running_var: :math:`\hat\sigma^2`, same shape as ``running_mean``.
        training: use (and update) batch statistics, else the running ones.
        momentum: weight :math:`\alpha` of the current batch in the running statistics.
        eps: added to the variance before the square root.
        dims: the dimensions reduced; ``(0, 2, 3, ...)`` when omitted.

    Returns:
        ``(y, running_mean, running_var)``: the output, shaped like ``x``, and the running statistics.

    Shape:
        - x: :math:`(N, C)`, :math:`(N, C, L)` or :math:`(N, C, H, W)`
        - output: same as ``x``
    """
    dims = (0, *range(2, x.dim())) if dims is None else dims
    if training:
        mean = x.mean(dim=dims, keepdim=True)  # (1, C, 1, ...)
        xc = x - mean  # centred, shaped like x
        var = (xc * xc).mean(dim=dims, keepdim=True)  # biased: used to normalise
        m = x.numel() // mean.numel()  # entries behind each statistic
        _check_batch(x, m)
        with torch.no_grad():
            running_mean = ((1 - momentum) * _per_channel(running_mean, x.dim()) + momentum * mean).squeeze(dims)
            running_var = ((1 - momentum) * _per_channel(running_var, x.dim()) + momentum * var * m / (m - 1)).squeeze(dims)
    else:
        xc, var = x - _per_channel(running_mean, x.dim()), _per_channel(running_var, x.dim())
    x_hat = xc * torch.rsqrt(var + eps)
    y = x_hat * _per_channel(weight, x.dim()) + _per_channel(bias, x.dim())
    return y, running_mean, running_var


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
        y, mean, var = batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self.training, self.momentum, self.eps)
        if self.training:
            self.running_mean.copy_(mean)  # buffers are updated in place, so state dicts stay valid
            self.running_var.copy_(var)
            self.num_batches_tracked += 1
        return y

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


def _check_last_dim(layer: nn.Module, x: torch.Tensor) -> None:
    if x.size(-1) != layer.dim:
        raise ValueError(f"{type(layer).__name__}({layer.dim}) expects last dimension {layer.dim}, got shape {tuple(x.shape)}")


class LayerNorm(nn.Module):
    r"""Layer normalisation over the last dimension, as ``nn.LayerNorm(dim, eps, bias=bias)``.

    .. math::

        \mu_t = \frac{1}{C}\sum_c x_{tc}, \quad \sigma_t^2 = \frac{1}{C}\sum_c (x_{tc} - \mu_t)^2,
        \quad y_{tc} = \gamma_c \frac{x_{tc} - \mu_t}{\sqrt{\sigma_t^2 + \epsilon}} + \beta_c

    Each token is normalised with its own statistics, so no token depends on another. With
    ``bias=False`` there is no :math:`\beta` (GPT-2 as nanoGPT trains it). Chapter 15.

    Args:
        dim: :math:`C`, the size of the normalised (last) dimension.
        eps: :math:`\epsilon`, added to the variance.
        bias: whether to learn the shift :math:`\beta`.

    Shape:
        - x: :math:`(\ldots, C)`; output: same shape
    """

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        check_positive_int(f"{type(self).__name__} dim", dim)
        self.dim, self.eps = dim, eps  # C, epsilon
        self.weight = nn.Parameter(torch.ones(dim))  # gamma
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None  # beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_last_dim(self, x)
        var, mu = torch.var_mean(x, dim=-1, keepdim=True, correction=0)  # (..., 1) each, biased variance
        y = (x - mu) * torch.rsqrt(var + self.eps) * self.weight  # (..., C)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, bias={self.bias is not None}"


class FusedLayerNorm(LayerNorm):
    r""":class:`LayerNorm` computed by PyTorch's fused kernel (``F.layer_norm``): same parameters and maths.

    One kernel instead of half a dozen, forward and backward; a chapter that wants speed opts
    in by name (``kernels="fused"`` in a model config). Tested equal to :class:`LayerNorm`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    r"""Root-mean-square normalisation (Zhang & Sennrich, 2019), as ``nn.RMSNorm(dim, eps)``.

    .. math::

        y_{tc} = \gamma_c \frac{x_{tc}}{\sqrt{\frac{1}{C}\sum_{c'} x_{tc'}^2 + \epsilon}}

    LayerNorm without the mean subtraction and the shift: one statistic per token instead of
    two. LLaMA's norm (``eps = 1e-6`` there and here). Chapter 20.

    Args:
        dim: :math:`C`, the size of the normalised (last) dimension.
        eps: :math:`\epsilon`, added to the mean square.

    Shape:
        - x: :math:`(\ldots, C)`; output: same shape
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        check_positive_int(f"{type(self).__name__} dim", dim)
        self.dim, self.eps = dim, eps  # C, epsilon
        self.weight = nn.Parameter(torch.ones(dim))  # gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_last_dim(self, x)
        ms = x.pow(2).mean(dim=-1, keepdim=True)  # (..., 1), the mean square
        return x * torch.rsqrt(ms + self.eps) * self.weight  # (..., C)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"


class FusedRMSNorm(RMSNorm):
    r""":class:`RMSNorm` computed by ``F.rms_norm``: same parameters and maths, PyTorch's kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (self.dim,), self.weight, self.eps)


NORMS: dict[str, dict[str, type[nn.Module]]] = {
    "layernorm": {"written": LayerNorm, "fused": FusedLayerNorm},
    "rmsnorm": {"written": RMSNorm, "fused": FusedRMSNorm},
}


def make_norm(kind: str, dim: int, *, kernels: str = "written", eps: float | None = None, bias: bool = True) -> nn.Module:
    r"""A norm by name: ``kind`` ``"layernorm"`` or ``"rmsnorm"``, ``kernels`` ``"written"`` or ``"fused"``.

    ``eps`` defaults to each class's own (``1e-5`` LayerNorm, ``1e-6`` RMSNorm); ``bias`` applies
    to LayerNorm only (RMSNorm has none).
    """
    if kind not in NORMS or kernels not in NORMS[kind]:
        raise ValueError(f"unknown norm {kind!r} with kernels {kernels!r}; expected one of {sorted(NORMS)} and 'written' or 'fused'")
    cls = NORMS[kind][kernels]
    kw: dict = {} if eps is None else {"eps": eps}
    if kind == "layernorm":
        kw["bias"] = bias
    return cls(dim, **kw)
