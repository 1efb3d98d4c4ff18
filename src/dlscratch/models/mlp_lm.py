r"""The MLP character language model of Bengio et al. (2003), with batch norm.

``Embedding → flatten the context → Linear → BatchNorm1d → Tanh → Linear``, built from the plain
layers of :mod:`dlscratch.layers.mini_nn`. Each of the ``block_size`` previous characters is
looked up in a table of ``n_embd``-dimensional vectors; the concatenated vectors go through one
hidden layer to the logits of the next character:

.. math::

    \mathbf{h} = \tanh\big(\operatorname{BN}(\mathbf{e}\,\mathbf{W}_1)\big), \qquad
    \mathbf{z} = \mathbf{h}\,\mathbf{W}_2 + \mathbf{b}_2 .

Introduced in chapter 4 (*MLP language model*), where its forward and backward passes are
also written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..layers.mini_nn import BatchNorm1d, Embedding, FlattenConsecutive, Layer, Linear, Sequential, Tanh
from .layer_lm import LayerStackLM

__all__ = ["MLPLMConfig", "MLPLM"]

_OPTIMIZERS = ("sgd", "adam")
_SCHEDULES = ("constant", "step", "cosine")


@dataclass(frozen=True)
class MLPLMConfig:
    r"""Architecture and training recipe of :class:`MLPLM`."""

    vocab_size: int = 27  # V: '.' plus a-z
    block_size: int = 3  # characters of context
    n_embd: int = 10  # size of each character's embedding
    n_hidden: int = 200  # width of the hidden layer
    batch_norm: bool = True  # BatchNorm1d before the tanh (the hidden Linear then has no bias)
    tanh_gain: float = 5 / 3  # Kaiming gain of the hidden Linear (5/3 suits tanh)
    last_layer_scale: float = 0.1  # shrink the output weights at init: near-uniform first predictions
    # training recipe (used by dlscratch.training.train_lm)
    steps: int = 200_000  # parameter updates
    batch_size: int = 32  # examples per update
    lr: float = 0.1  # peak learning rate
    optimizer: str = "sgd"  # "sgd" or "adam"
    momentum: float = 0.0  # SGD momentum
    schedule: str = "step"  # "constant", "step" (x min_lr_ratio after 75 %) or "cosine"
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of lr
    seed: int = 2147483647  # seeds the minibatches (train_lm); seed_everything(seed) before building seeds the weights

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_embd", "n_hidden", "steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {self.vocab_size}")
        if self.lr <= 0 or self.tanh_gain <= 0 or self.last_layer_scale <= 0:
            raise ValueError(
                f"lr, tanh_gain and last_layer_scale must be positive, got {self.lr}, {self.tanh_gain}, {self.last_layer_scale}"
            )
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        if not 0.0 <= self.momentum < 1.0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"need 0 <= momentum < 1 and 0 <= min_lr_ratio <= 1, got {self.momentum}, {self.min_lr_ratio}")

    @property
    def num_params(self) -> int:
        r"""Trainable parameters: :math:`VE + (BE)H + [2H \text{ or } H] + HV + V`."""
        V, E, B, H = self.vocab_size, self.n_embd, self.block_size, self.n_hidden
        hidden_extra = 2 * H if self.batch_norm else H  # BN gain and bias, or the Linear's bias
        return V * E + B * E * H + hidden_extra + H * V + V

    @property
    def train_kwargs(self) -> dict[str, object]:
        r"""The training fields, as keyword arguments of :func:`dlscratch.training.train_lm`."""
        names = ("steps", "batch_size", "lr", "optimizer", "momentum", "schedule", "min_lr_ratio", "seed")
        return {name: getattr(self, name) for name in names}

    @classmethod
    def cpu(cls) -> "MLPLMConfig":
        r"""Chapter 4 on a 2-core CPU: the reference model, SGD with momentum on large batches, cosine decay."""
        return cls(steps=7_000, batch_size=512, lr=0.2, optimizer="sgd", momentum=0.9, schedule="cosine", min_lr_ratio=0.0)

    @classmethod
    def gpu(cls) -> "MLPLMConfig":
        r"""Chapter 4 on one GPU: the CPU preset's recipe for three times the steps."""
        return replace(cls.cpu(), steps=21_000)

    @classmethod
    def reference(cls) -> "MLPLMConfig":
        r"""The reference recipe of *Building makemore Part 3*: 200k SGD steps of 32, lr 0.1 then 0.01.

        The steps are tiny, so Python overhead sets the pace: about 2 ms per step, 7 minutes in
        all, on one H100.
        """
        return cls(steps=200_000, batch_size=32, lr=0.1, optimizer="sgd", schedule="step", min_lr_ratio=0.1)


class MLPLM(LayerStackLM):
    r"""The MLP language model: contexts ``(B, block_size)`` of ids → next-character logits ``(B, V)``.

    Args:
        config: the architecture (the training fields are not used here).
        device: where the parameters live.
        dtype: parameter dtype (float32 by default).

    The initial weights come from torch's global generator, like those of :mod:`torch.nn`
    layers: call ``seed_everything(config.seed)`` first for the chapter's weights.

    Shape:
        - ctx: :math:`(B, T)` with :math:`T` = ``block_size``
        - output: :math:`(B, V)`
    """

    def __init__(
        self,
        config: MLPLMConfig,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.config = c = config
        kw = {"device": device, "dtype": dtype}
        emb = Embedding(c.vocab_size, c.n_embd, **kw)
        hidden = Linear(c.block_size * c.n_embd, c.n_hidden, bias=not c.batch_norm, **kw)
        head = Linear(c.n_hidden, c.vocab_size, **kw)
        layers: list[Layer] = [emb, FlattenConsecutive(c.block_size), hidden]  # (B, T) -> (B, T*E) -> (B, H)
        if c.batch_norm:
            layers.append(BatchNorm1d(c.n_hidden, **kw))
        layers += [Tanh(), head]
        with torch.no_grad():
            hidden.weight *= c.tanh_gain  # Kaiming: std = gain / sqrt(fan_in)
            head.weight *= c.last_layer_scale  # logits start near 0: loss near log(V)
        self.layers = Sequential(layers)
