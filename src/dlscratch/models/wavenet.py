r"""A WaveNet-style hierarchical character language model.

Instead of squashing all ``block_size`` characters into one hidden layer at once (chapter 4),
the context is fused two neighbours at a time, level after level, as in the dilated causal
convolutions of WaveNet (van den Oord et al., 2016):

.. code-block:: text

    (B, 8) ids → Embedding → (B, 8, E) → [FlattenConsecutive(2) → Linear → BatchNorm1d → Tanh] × 3
    → (B, H) → Linear → (B, V)

With 8 characters of context there are :math:`\log_2 8 = 3` levels: ``(B, 8, E) → (B, 4, H) →
(B, 2, H) → (B, H)``. Batch norm sees 3-D activations in the first two levels and normalises
over both the batch and the position dimensions; like torch's, it wants them as ``(B, H, L)``,
so each batch norm sits between two ``Transpose(1, -1)`` (which do nothing to the 2-D ``(B, H)``
of the top level). Each level is a convolution with kernel size and stride ``fuse``.

Introduced in chapter 5 (*WaveNet*).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..layers.mini_nn import BatchNorm1d, Embedding, FlattenConsecutive, Layer, Linear, Sequential, Tanh, Transpose
from .layer_lm import LayerStackLM

__all__ = ["WaveNetConfig", "WaveNet"]

_OPTIMIZERS = ("sgd", "adam")
_SCHEDULES = ("constant", "step", "cosine")


@dataclass(frozen=True)
class WaveNetConfig:
    r"""Architecture and training recipe of :class:`WaveNet`."""

    vocab_size: int = 27  # V: '.' plus a-z
    block_size: int = 8  # characters of context; a power of `fuse`
    n_embd: int = 24  # E, size of each character's embedding
    n_hidden: int = 128  # H, width of every level
    fuse: int = 2  # neighbouring positions merged by each level
    tanh_gain: float = 5 / 3  # Kaiming gain of the hidden Linears (5/3 suits tanh)
    last_layer_scale: float = 0.1  # shrink the output weights at init: near-uniform first predictions
    # training recipe (used by dlscratch.training.train_lm)
    steps: int = 200_000  # parameter updates
    batch_size: int = 32  # examples per update
    lr: float = 0.1  # peak learning rate
    optimizer: str = "sgd"  # "sgd" or "adam"
    momentum: float = 0.0  # SGD momentum
    schedule: str = "step"  # "constant", "step" (x min_lr_ratio after 75 %) or "cosine"
    min_lr_ratio: float = 0.1  # final learning rate as a fraction of lr
    seed: int = 42  # seeds the minibatches (train_lm); seed_everything(seed) before building seeds the weights

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_embd", "n_hidden", "steps", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.fuse < 2:
            raise ValueError(f"fuse must be at least 2, got {self.fuse}")
        if self.fuse ** self.n_levels != self.block_size:
            raise ValueError(f"block_size={self.block_size} must be a power of fuse={self.fuse}")
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
    def n_levels(self) -> int:
        r"""Number of fusing levels, :math:`\log_{\text{fuse}}(\text{block\_size})` (rounded)."""
        levels, size = 0, 1
        while size < self.block_size:
            size *= self.fuse
            levels += 1
        return levels

    @property
    def num_params(self) -> int:
        r"""Trainable parameters: :math:`VE + (fE)H + (L-1)(fH)H + 2LH + HV + V` for :math:`L` levels."""
        V, E, H, f, L = self.vocab_size, self.n_embd, self.n_hidden, self.fuse, self.n_levels
        return V * E + f * E * H + (L - 1) * f * H * H + 2 * L * H + H * V + V

    @property
    def train_kwargs(self) -> dict[str, object]:
        r"""The training fields, as keyword arguments of :func:`dlscratch.training.train_lm`."""
        names = ("steps", "batch_size", "lr", "optimizer", "momentum", "schedule", "min_lr_ratio", "seed")
        return {name: getattr(self, name) for name in names}

    @classmethod
    def cpu(cls) -> "WaveNetConfig":
        r"""Chapter 5 on a 2-core CPU: the reference 76K-parameter model, Adam on large batches."""
        return cls(steps=2_500, batch_size=512, lr=0.005, optimizer="adam", schedule="cosine", min_lr_ratio=0.0)

    @classmethod
    def gpu(cls) -> "WaveNetConfig":
        r"""Chapter 5 on one GPU: the CPU preset's recipe for three times the steps."""
        return replace(cls.cpu(), steps=7_500)

    @classmethod
    def reference(cls) -> "WaveNetConfig":
        r"""The reference recipe of *Building makemore Part 5*: 200k SGD steps of 32, lr 0.1 then 0.01.

        The steps are tiny, so Python overhead sets the pace: about 3.5 ms per step, 12 minutes
        in all, on one H100.
        """
        return cls(steps=200_000, batch_size=32, lr=0.1, optimizer="sgd", schedule="step", min_lr_ratio=0.1)


class WaveNet(LayerStackLM):
    r"""Hierarchical model: contexts ``(B, block_size)`` of ids → next-character logits ``(B, V)``.

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
        config: WaveNetConfig,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.config = c = config
        kw = {"device": device, "dtype": dtype}
        layers: list[Layer] = [Embedding(c.vocab_size, c.n_embd, **kw)]  # (B, T, E)
        fan_in = c.fuse * c.n_embd
        for _ in range(c.n_levels):  # (B, T, C) -> (B, T/f, f*C) -> (B, T/f, H); (B, H) at the top
            hidden = Linear(fan_in, c.n_hidden, bias=False, **kw)
            with torch.no_grad():
                hidden.weight *= c.tanh_gain
            norm = [Transpose(1, -1), BatchNorm1d(c.n_hidden, **kw), Transpose(1, -1)]  # normalised as (B, H, T/f)
            layers += [FlattenConsecutive(c.fuse), hidden, *norm, Tanh()]
            fan_in = c.fuse * c.n_hidden
        head = Linear(c.n_hidden, c.vocab_size, **kw)  # (B, H) -> (B, V)
        with torch.no_grad():
            head.weight *= c.last_layer_scale
        self.layers = Sequential([*layers, head])
