r"""``torch.nn`` in miniature: plain Python layers for the language models of Part II.

These classes are not :class:`torch.nn.Module` subclasses. Each is a few lines of tensor code
with a ``__call__`` (the forward pass), a ``parameters()`` list and a ``training`` flag, so that
nothing is hidden: autograd computes the gradients, and :meth:`Sequential.outputs` returns every
activation of a forward pass for the chapter to inspect. They follow the style of the
``makemore`` lectures but use torch's parameter names (``weight``, ``bias``, ``running_mean``,
``running_var``) and layouts (batch norm takes ``(N, C)`` or ``(N, C, L)``), so a test can copy
them into the torch twin. Like :mod:`torch.nn` layers, they draw their initial weights from
torch's global generator: seed it with :func:`dlscratch.utils.seed_everything`.

Introduced in chapter 4 (*MLP language model*); :class:`FlattenConsecutive`, :class:`Transpose`
and the 3-D case of :class:`BatchNorm1d` in chapter 5 (*WaveNet*).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from .norms import batch_norm

__all__ = ["Layer", "Linear", "BatchNorm1d", "Tanh", "Embedding", "FlattenConsecutive", "Transpose", "Sequential"]


class Layer:
    r"""Base class: a ``training`` flag, ``train()``/``eval()`` and an empty parameter list."""

    training: bool = True  # batch norm uses batch statistics when True, running ones when False

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
        device: where the parameters live (the weights are drawn on the CPU, from torch's global
            generator, so a seed gives the same weights on every device).
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
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        w = torch.randn((fan_in, fan_out), dtype=dtype) / fan_in**0.5
        self.weight = w.to(device).requires_grad_()  # (fan_in, fan_out)
        self.bias = torch.zeros(fan_out, device=device, dtype=dtype).requires_grad_() if bias else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ self.weight  # (*, fan_in) @ (fan_in, fan_out) -> (*, fan_out)
        if self.bias is not None:
            out = out + self.bias
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
    others in its batch. The maths is :func:`dlscratch.layers.norms.batch_norm`, shared with the
    ``nn.Module`` batch norm of chapter 6.

    The layout is torch's: a 2-D input ``(N, C)`` is reduced over dim 0; a 3-D input
    ``(N, C, L)`` over dims ``(0, 2)``, so every channel has one mean and one variance whatever
    its position. Which dimensions are reduced is decided by :meth:`reduce_dims`; chapter 5
    overrides it to show what goes wrong with dim 0 alone.

    Args:
        dim: number of channels :math:`C`.
        eps: added to the variance before the square root.
        momentum: weight :math:`m` of the current batch in the running statistics.
        device: where the parameters and buffers live.
        dtype: their dtype (float32 by default).

    Shape:
        - x: :math:`(N, C)` or :math:`(N, C, L)`
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
        r"""The dimensions the statistics are taken over: ``(0,)`` for 2-D, ``(0, 2)`` for 3-D."""
        return (0,) if x.ndim == 2 else (0, 2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _check_bn_input(x, self.dim)
        y, self.running_mean, self.running_var = batch_norm(
            x, self.weight, self.bias, self.running_mean, self.running_var, self.training, self.momentum, self.eps, self.reduce_dims(x)
        )
        return y

    def parameters(self) -> list[torch.Tensor]:
        return [self.weight, self.bias]


def _check_bn_input(x: torch.Tensor, dim: int) -> None:
    if x.ndim not in (2, 3):
        raise ValueError(f"BatchNorm1d expects (N, C) or (N, C, L) input, got shape {tuple(x.shape)}")
    if x.shape[1] != dim:
        raise ValueError(f"BatchNorm1d({dim}) got {x.shape[1]} channels in dim 1 of input of shape {tuple(x.shape)}")


class Tanh(Layer):
    r"""Element-wise :math:`\tanh(x) = (e^x - e^{-x})/(e^x + e^{-x})`, with values in :math:`(-1, 1)`."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class Embedding(Layer):
    r"""A lookup table: token id :math:`i` becomes row :math:`i` of ``weight``.

    Args:
        num_embeddings: vocabulary size :math:`V`.
        embedding_dim: vector size :math:`C`.
        device: where the table lives (its :math:`\mathcal{N}(0, 1)` rows are drawn on the CPU,
            from torch's global generator).
        dtype: its dtype (float32 by default).

    Shape:
        - ix: :math:`(*)` integer ids in ``[0, V)``
        - output: :math:`(*, C)`
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        w = torch.randn((num_embeddings, embedding_dim), dtype=dtype)
        self.weight = w.to(device).requires_grad_()  # (V, C)

    def __call__(self, ix: torch.Tensor) -> torch.Tensor:
        return self.weight[ix]  # (*, C)

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
        return x


class Transpose(Layer):
    r"""Swap two dimensions, as :func:`torch.transpose` does: ``Transpose(1, -1)`` turns ``(B, L, C)`` into ``(B, C, L)``.

    Chapter 5 wraps each :class:`BatchNorm1d` of the WaveNet in ``Transpose(1, -1)``: its
    :class:`Linear` layers work on the last dimension, while batch norm, like torch's, wants the
    channels in dim 1. On a 2-D ``(B, C)`` input, ``Transpose(1, -1)`` changes nothing.

    Args:
        dim0: one dimension.
        dim1: the other.

    Shape:
        - x: any tensor with both dimensions
        - output: ``x`` with ``dim0`` and ``dim1`` swapped
    """

    def __init__(self, dim0: int, dim1: int) -> None:
        self.dim0, self.dim1 = dim0, dim1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1)


class Sequential(Layer):
    r"""Apply ``layers`` in order; ``parameters()``, ``train()`` and ``eval()`` reach every layer.

    Args:
        layers: the layers, first applied first.
    """

    def __init__(self, layers: Iterable[Layer]) -> None:
        self.layers = list(layers)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[-1]

    def outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        r"""The output of every layer on input ``x``, in order; the last one is ``self(x)``.

        This is how the chapters inspect activations (and, with ``retain_grad()``, the gradients
        arriving at them) without the layers keeping any state from their last call.
        """
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs

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
