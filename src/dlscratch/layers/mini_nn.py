r"""``torch.nn`` in miniature: plain Python layers for the language models of Part II.

These classes are not :class:`torch.nn.Module` subclasses. Each is a few lines of tensor code
with a ``__call__`` (the forward pass), a ``parameters()`` list and a ``training`` flag, so that
nothing is hidden: autograd computes the gradients, and the chapter can read every activation
through the ``out`` attribute that each layer keeps from its last call. They follow the style of
the ``makemore`` lectures and use torch's parameter names (``weight``, ``bias``,
``running_mean``, ``running_var``), so a test can copy them into the torch twin.

Introduced in chapter 4 (*MLP language model*); :class:`FlattenConsecutive` and the 3-D case of
:class:`BatchNorm1d` in chapter 5 (*WaveNet*).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

__all__ = ["Layer", "Linear", "BatchNorm1d", "Tanh", "Embedding", "FlattenConsecutive", "Sequential"]


class Layer:
    r"""Base class: a ``training`` flag, ``train()``/``eval()`` and an empty parameter list."""

    training: bool = True  # batch norm uses batch statistics when True, running ones when False
    out: torch.Tensor | None = None  # the output of the last call, kept for inspection

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def parameters(self) -> list[torch.Tensor]:
        r"""The trainable tensors of this layer (empty for parameter-free layers)."""
        return []

    def train(self, mode: bool = True) -> "Layer":
        r"""Switch to training mode (``mode=True``) or evaluation mode; returns ``self``."""
        self.training = mode
        return self

    def eval(self) -> "Layer":
        r"""Switch to evaluation mode; returns ``self``."""
        return self.train(False)


class Linear(Layer):
    r"""Affine map with Kaiming-style initialisation.

    .. math::

        \mathbf{y} = \mathbf{x} \mathbf{W} + \mathbf{b}, \qquad
        W_{ij} \sim \mathcal{N}(0, 1/\text{fan\_in}) .

    The weight is stored as ``(fan_in, fan_out)`` so that the forward pass is ``x @ weight``;
    :class:`torch.nn.Linear` stores the transpose ``(out_features, in_features)``. The
    :math:`1/\sqrt{\text{fan\_in}}` scale keeps the output variance equal to the input variance
    at initialisation; multiply ``weight`` by a gain (5/3 before a tanh) where needed.

    Args:
        fan_in: input features.
        fan_out: output features.
        bias: add a learnable bias (set ``False`` before a batch norm, which has its own).
        generator: CPU generator for the initial weights.
        device: where the parameters live.
        dtype: parameter dtype (float32 by default).

    Shape:
        - x: :math:`(*, \text{fan\_in})`
        - output: :math:`(*, \text{fan\_out})`
    """

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        bias: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        w = torch.randn((fan_in, fan_out), generator=generator, dtype=dtype) / fan_in**0.5
        self.weight = w.to(device).requires_grad_()  # (fan_in, fan_out)
        self.bias = torch.zeros(fan_out, device=device, dtype=dtype).requires_grad_() if bias else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight  # (*, fan_in) @ (fan_in, fan_out) -> (*, fan_out)
        if self.bias is not None:
            out = out + self.bias
        self.out = out
        return out

    def parameters(self) -> list[torch.Tensor]:
        return [self.weight] + ([] if self.bias is None else [self.bias])


class BatchNorm1d(Layer):
    r"""Batch normalisation over the batch (and, for 3-D input, the position) dimensions.

    In training mode, with :math:`\mu` and :math:`\sigma^2` the mean and the biased variance of
    each channel over the :math:`n` reduced entries,

    .. math::

        \hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat{x} + \beta ,

    and the running statistics move towards the batch ones,
    :math:`\bar{\mu} \leftarrow (1 - m)\bar{\mu} + m\mu` and
    :math:`\bar{\sigma}^2 \leftarrow (1 - m)\bar{\sigma}^2 + m \frac{n}{n-1}\sigma^2` (the
    unbiased variance, as :class:`torch.nn.BatchNorm1d` does). In evaluation mode the running
    statistics replace the batch ones, so the output of one example no longer depends on the
    others in its batch.

    A 2-D input ``(N, C)`` is reduced over dim 0; a 3-D input ``(N, L, C)`` (channels last,
    unlike torch's ``(N, C, L)``) over dims ``(0, 1)``, so every channel has one mean and one
    variance whatever its position. Which dimensions are reduced is decided by
    :meth:`reduce_dims`; chapter 5 overrides it to show what goes wrong with dim 0 alone.

    Args:
        dim: number of channels :math:`C`.
        eps: added to the variance before the square root.
        momentum: weight :math:`m` of the current batch in the running statistics.
        device: where the parameters and buffers live.
        dtype: their dtype (float32 by default).

    Shape:
        - x: :math:`(N, C)` or :math:`(N, L, C)`
        - output: same as ``x``
    """

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.dim, self.eps, self.momentum = dim, eps, momentum
        self.weight = torch.ones(dim, device=device, dtype=dtype).requires_grad_()  # gamma, (C,)
        self.bias = torch.zeros(dim, device=device, dtype=dtype).requires_grad_()  # beta, (C,)
        self.running_mean = torch.zeros(dim, device=device, dtype=dtype)  # (C,) buffer
        self.running_var = torch.ones(dim, device=device, dtype=dtype)  # (C,) buffer

    def reduce_dims(self, x: torch.Tensor) -> tuple[int, ...]:
        r"""The dimensions the statistics are taken over: ``(0,)`` for 2-D, ``(0, 1)`` for 3-D."""
        if x.ndim == 2:
            return (0,)
        if x.ndim == 3:
            return (0, 1)
        raise ValueError(f"BatchNorm1d expects (N, C) or (N, L, C) input, got shape {tuple(x.shape)}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"BatchNorm1d({self.dim}) got {x.shape[-1]} channels in input of shape {tuple(x.shape)}")
        dims = self.reduce_dims(x)
        if self.training:
            mean = x.mean(dims)  # (C,)
            xc = x - mean  # centred input, same shape as x
            var = (xc * xc).mean(dims)  # (C,), biased: used to normalise
        else:
            mean, var = self.running_mean, self.running_var
            xc = x - mean
        xhat = xc * torch.rsqrt(var + self.eps)  # same shape as x
        self.out = self.weight * xhat + self.bias
        if self.training:
            n = x.numel() // mean.numel()  # entries behind each statistic
            with torch.no_grad():
                m = self.momentum
                self.running_mean = (1 - m) * self.running_mean + m * mean.detach()
                self.running_var = (1 - m) * self.running_var + m * var.detach() * n / (n - 1)
        return self.out

    def parameters(self) -> list[torch.Tensor]:
        return [self.weight, self.bias]


class Tanh(Layer):
    r"""Element-wise :math:`\tanh(x) = (e^x - e^{-x})/(e^x + e^{-x})`, with values in :math:`(-1, 1)`."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.out = torch.tanh(x)
        return self.out


class Embedding(Layer):
    r"""A lookup table: token id :math:`i` becomes row :math:`i` of ``weight``.

    Args:
        num_embeddings: vocabulary size :math:`V`.
        embedding_dim: vector size :math:`C`.
        generator: CPU generator for the initial :math:`\mathcal{N}(0, 1)` rows.
        device: where the table lives.
        dtype: its dtype (float32 by default).

    Shape:
        - ix: :math:`(*)` integer ids in ``[0, V)``
        - output: :math:`(*, C)`
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        w = torch.randn((num_embeddings, embedding_dim), generator=generator, dtype=dtype)
        self.weight = w.to(device).requires_grad_()  # (V, C)

    def __call__(self, ix: torch.Tensor) -> torch.Tensor:
        self.out = self.weight[ix]  # (*, C)
        return self.out

    def parameters(self) -> list[torch.Tensor]:
        return [self.weight]


class FlattenConsecutive(Layer):
    r"""Concatenate every ``n`` consecutive positions into one: ``(B, T, C) → (B, T/n, nC)``.

    When only one position is left the time dimension is dropped, giving ``(B, nC)``. With
    ``n = T`` this is the plain flatten of chapter 4; with ``n = 2`` it fuses neighbouring pairs
    (chapter 5).

    Args:
        n: how many consecutive positions to fuse.

    Raises:
        ValueError: (on call) if ``T`` is not a multiple of ``n``.

    Shape:
        - x: :math:`(B, T, C)`
        - output: :math:`(B, T/n, nC)`, or :math:`(B, nC)` when :math:`T = n`
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"FlattenConsecutive needs n >= 1, got {n}")
        self.n = n

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        if T % self.n != 0:
            raise ValueError(f"FlattenConsecutive({self.n}): sequence length T={T} is not a multiple of n={self.n}")
        x = x.reshape(B, T // self.n, C * self.n)  # (B, T/n, nC): positions 2k, 2k+1 side by side
        if x.shape[1] == 1:
            x = x.squeeze(1)  # (B, nC)
        self.out = x
        return x


class Sequential(Layer):
    r"""Apply ``layers`` in order; ``parameters()``, ``train()`` and ``eval()`` reach every layer.

    Args:
        layers: the layers, first applied first.
    """

    def __init__(self, layers: Iterable[Layer]) -> None:
        self.layers = list(layers)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        self.out = x
        return x

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def parameters(self) -> list[torch.Tensor]:
        return [p for layer in self.layers for p in layer.parameters()]

    def train(self, mode: bool = True) -> "Sequential":
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self
