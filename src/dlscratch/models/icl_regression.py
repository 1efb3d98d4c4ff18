r"""A Transformer that reads a prompt of (x, y) pairs and predicts y for each next x (chapter 30).

Garg et al. (2022) train a GPT-2 decoder on prompts :math:`(x_1, y_1, \ldots, x_k, y_k, x_q)`
whose pairs come from a function drawn afresh for every prompt. The inputs are vectors, not
tokens: each :math:`x_i \in \mathbb{R}^d`, written as :math:`(x_i, 0)`, and each :math:`y_i`, written
as :math:`(0, \ldots, 0, y_i)`, is mapped into the residual stream by one linear read-in, and a linear read-out at every
:math:`x` position gives the prediction of its :math:`y` from the pairs before it. The blocks are
chapter 17's :func:`~dlscratch.models.gpt.gpt_block` (pre-LN, causal attention, GELU MLP).

Introduced in chapter 30, *In-context learning and induction heads*. Symbols: B batch,
K points per prompt, d input dimension, C channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers.checks import check_positive_int
from ..layers.norms import LayerNorm
from .decoder import gpt2_init
from .gpt import GPTConfig, gpt_block

__all__ = ["RegressionConfig", "InContextRegressor", "interleave"]


@dataclass(frozen=True)
class RegressionConfig:
    r"""Sizes of an :class:`InContextRegressor`. Presets: :meth:`cpu` and :meth:`gpu` (chapter 30's)."""

    dim: int = 5  # d: dimension of each x
    n_points: int = 16  # K: most (x, y) pairs in a prompt; the context holds 2K positions
    n_layer: int = 3  # Transformer blocks
    n_head: int = 2  # heads per block
    n_embd: int = 64  # C: width of the residual stream

    def __post_init__(self) -> None:
        for name in ("dim", "n_points", "n_layer", "n_head", "n_embd"):
            check_positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} (n_embd % n_head = {self.n_embd % self.n_head})"
            )

    @classmethod
    def cpu(cls, dim: int = 5, n_points: int = 16) -> RegressionConfig:
        r"""The chapter's CPU model: 2 blocks, 2 heads, 64 wide."""
        return cls(dim=dim, n_points=n_points, n_layer=2, n_head=2, n_embd=64)

    @classmethod
    def gpu(cls, dim: int = 5, n_points: int = 16) -> RegressionConfig:
        r"""A larger model for a GPU: 6 blocks, 4 heads, 128 wide."""
        return cls(dim=dim, n_points=n_points, n_layer=6, n_head=4, n_embd=128)


def interleave(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    r"""The prompt as one sequence of :math:`d + 1` vectors :math:`(x_1, 0), (0, y_1), (x_2, 0), (0, y_2), \ldots`.

    The last coordinate holds the :math:`y`'s, so an :math:`x` and a :math:`y` never share a channel.

    Shape:
        - xs: :math:`(B, K, d)`; ys: :math:`(B, K)`; output: :math:`(B, 2K, d + 1)`
    """
    if xs.dim() != 3 or ys.shape != xs.shape[:2]:
        raise ValueError(f"expected xs (B, K, d) and ys (B, K), got {tuple(xs.shape)} and {tuple(ys.shape)}")
    B, K, d = xs.shape
    z = xs.new_zeros(B, K, 2, d + 1)  # (B, K, 2, d + 1)
    z[:, :, 0, :d] = xs
    z[:, :, 1, d] = ys
    return z.view(B, 2 * K, d + 1)  # (B, K, 2, d + 1) -> (B, 2K, d + 1)


class InContextRegressor(nn.Module):
    r"""Read-in, learned positions, GPT blocks, LayerNorm, read-out at the :math:`x` positions.

    .. math::

        h_0 = W_\text{in}\, z_t + b_\text{in} + W_P[t], \qquad h_\ell = \operatorname{Block}_\ell(h_{\ell-1}), \qquad
        \hat{y}_i = w_\text{out}^\top \operatorname{LN}(h_L)_{2i-1} + b_\text{out}

    where :math:`z = (x_1, y_1, \ldots, x_K, y_K)` (:func:`interleave`): the prediction for
    :math:`y_i` is read at the position of :math:`x_i`, which sees only :math:`x_{\le i}` and
    :math:`y_{<i}`. Chapter 30.

    Shape:
        - xs: :math:`(B, K, d)`; ys: :math:`(B, K)`, :math:`K \le` ``n_points``
        - output: predictions :math:`(B, K)`, the :math:`i`-th from the first :math:`i - 1` pairs and :math:`x_i`
    """

    def __init__(self, config: RegressionConfig) -> None:
        super().__init__()
        c = self.config = config
        gpt = GPTConfig(vocab_size=1, block_size=2 * c.n_points, n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd, bias=True)
        self.read_in = nn.Linear(c.dim + 1, c.n_embd)  # W_in, (C, d + 1)
        self.wpe = nn.Embedding(2 * c.n_points, c.n_embd)  # W_P, (2K, C)
        self.blocks = nn.ModuleList([gpt_block(gpt) for _ in range(c.n_layer)])
        self.norm_f = LayerNorm(c.n_embd)
        self.read_out = nn.Linear(c.n_embd, 1)  # w_out, (1, C)
        self.apply(gpt2_init)

    def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        c = self.config
        if xs.dim() != 3 or xs.size(-1) != c.dim:
            raise ValueError(f"xs must be (B, K, dim={c.dim}), got shape {tuple(xs.shape)}")
        if xs.size(1) > c.n_points:
            raise ValueError(f"a prompt of K={xs.size(1)} points exceeds n_points={c.n_points}")
        z = interleave(xs, ys)  # (B, 2K, d + 1)
        h = self.read_in(z) + self.wpe.weight[: z.size(1)]  # (B, 2K, C)
        for block in self.blocks:
            h = block(h, is_causal=True)  # (B, 2K, C)
        return self.read_out(self.norm_f(h))[:, 0::2, 0]  # the x positions: (B, 2K, 1) -> (B, K)
