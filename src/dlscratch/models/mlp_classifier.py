r"""A multilayer perceptron that classifies small images (the 8×8 digits of chapter 6).

``Flatten → [Linear → BatchNorm1d → activation → Dropout] × depth → Linear``: every hidden block
is optional in its normalisation and dropout, so one class covers the plain MLP and the
regularised ones of chapters 6 and 8. Batch norm and dropout are the package's own layers
(:mod:`dlscratch.layers.norms`, :mod:`dlscratch.layers.dropout`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers.dropout import Dropout
from ..layers.norms import BatchNorm1d

__all__ = ["MLPClassifierConfig", "MLPClassifier"]

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class MLPClassifierConfig:
    r"""Hyper-parameters of :class:`MLPClassifier`."""

    in_shape: tuple[int, ...] = (1, 8, 8)  # shape of one input without the batch, e.g. (C, H, W)
    n_classes: int = 10  # K, the number of output logits
    hidden: int = 128  # width of every hidden layer
    depth: int = 2  # number of hidden blocks (0 gives multinomial logistic regression)
    batch_norm: bool = True  # BatchNorm1d after each hidden Linear (whose bias is then dropped)
    dropout: float = 0.0  # drop probability after each hidden activation (0 = no Dropout layer)
    activation: str = "relu"  # one of "relu", "gelu", "tanh"

    def __post_init__(self) -> None:
        if len(self.in_shape) == 0 or any(int(s) <= 0 for s in self.in_shape):
            raise ValueError(f"in_shape must be a non-empty tuple of positive sizes, got {self.in_shape}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {self.n_classes}")
        if self.hidden <= 0:
            raise ValueError(f"hidden must be positive, got {self.hidden}")
        if self.depth < 0:
            raise ValueError(f"depth must be non-negative, got {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")

    @property
    def in_features(self) -> int:
        r"""Number of inputs after flattening, the product of ``in_shape``."""
        n = 1
        for s in self.in_shape:
            n *= int(s)
        return n

    @classmethod
    def digits(cls) -> "MLPClassifierConfig":
        r"""Chapter 6's classifier for the 8×8 digits: two hidden layers of 128, batch norm, dropout 0.1."""
        return cls(in_shape=(1, 8, 8), n_classes=10, hidden=128, depth=2, batch_norm=True, dropout=0.1)

    @classmethod
    def plain(cls) -> "MLPClassifierConfig":
        r"""The same network without batch norm or dropout: the unregularised baseline."""
        return cls(in_shape=(1, 8, 8), n_classes=10, hidden=128, depth=2, batch_norm=False, dropout=0.0)

    @classmethod
    def tiny(cls) -> "MLPClassifierConfig":
        r"""A small network for tests: one hidden layer of 16."""
        return cls(in_shape=(1, 8, 8), n_classes=10, hidden=16, depth=1, batch_norm=True, dropout=0.1)


class MLPClassifier(nn.Module):
    r"""Flatten, ``depth`` hidden blocks, then a linear layer to ``n_classes`` logits.

    Hidden block :math:`\ell` computes

    .. math::

        \mathbf{h}_\ell = \operatorname{Dropout}\bigl(\phi(\operatorname{BN}(\mathbf{W}_\ell \mathbf{h}_{\ell-1} + \mathbf{b}_\ell))\bigr),
        \qquad \mathbf{z} = \mathbf{W}_{\text{out}} \mathbf{h}_{\text{depth}} + \mathbf{b}_{\text{out}},

    with :math:`\mathbf{h}_0` the flattened input. When batch norm is on, the hidden Linear has
    no bias: BN subtracts the batch mean, which would cancel it, and BN's own shift
    :math:`\beta` takes its place. Introduced in chapter 6 (deep networks).

    Shape:
        - input: :math:`(B, *\text{in\_shape})`, e.g. :math:`(B, 1, 8, 8)`
        - output: :math:`(B, K)` logits
    """

    def __init__(self, config: MLPClassifierConfig) -> None:
        super().__init__()
        self.config = config
        blocks = []
        width_in = config.in_features
        for _ in range(config.depth):
            layers: list[nn.Module] = [nn.Linear(width_in, config.hidden, bias=not config.batch_norm)]
            if config.batch_norm:
                layers.append(BatchNorm1d(config.hidden))
            layers.append(_ACTIVATIONS[config.activation]())
            if config.dropout > 0:
                layers.append(Dropout(config.dropout))
            blocks.append(nn.Sequential(*layers))
            width_in = config.hidden
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(width_in, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        want = tuple(self.config.in_shape)
        if x.dim() != len(want) + 1 or tuple(x.shape[1:]) != want:
            raise ValueError(f"MLPClassifier expects input of shape (B, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        B = x.shape[0]
        h = x.reshape(B, -1)  # (B, in_features)
        for block in self.blocks:
            h = block(h)  # (B, hidden)
        return self.head(h)  # (B, K)
