r"""The common shell of the language models built from chapter 4's ``mini_nn`` layers.

:class:`~dlscratch.models.mlp_lm.MLPLM` (chapter 4) and :class:`~dlscratch.models.wavenet.WaveNet`
(chapter 5) differ only in the stack of layers their constructors build; calling the model,
its parameters, their count and the training/evaluation switch are this one base class.
"""

from __future__ import annotations

from typing import TypeVar

import torch

from ..layers.mini_nn import Sequential

__all__ = ["LayerStackLM"]

_LM = TypeVar("_LM", bound="LayerStackLM")  # the subclass, so train() returns a WaveNet for a WaveNet


class LayerStackLM:
    r"""A language model whose forward pass is one :class:`~dlscratch.layers.mini_nn.Sequential`.

    Subclasses set ``self.layers`` in their constructor.

    Shape:
        - ctx: :math:`(B, T)` token ids; output: :math:`(B, V)` next-token logits
    """

    layers: Sequential

    def logits(self, ctx: torch.Tensor) -> torch.Tensor:
        r"""Next-character logits for each context ``(B, T)`` → ``(B, V)``."""
        return self.layers(ctx)

    __call__ = logits

    def parameters(self) -> list[torch.Tensor]:
        r"""All trainable tensors, embedding table first."""
        return self.layers.parameters()

    def num_params(self) -> int:
        r"""Number of trainable scalars (equals ``config.num_params``)."""
        return sum(p.numel() for p in self.parameters())

    def train(self: _LM, mode: bool = True) -> _LM:
        r"""Training mode: batch norm uses (and updates) batch statistics."""
        self.layers.train(mode)
        return self

    def eval(self: _LM) -> _LM:
        r"""Evaluation mode: batch norm uses its running statistics."""
        return self.train(False)
