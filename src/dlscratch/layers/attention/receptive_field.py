r"""The receptive field of a stack of sliding-window attention layers, measured through gradients.

Chapter 19, *MQA, GQA and sliding-window attention*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .modules import MultiHeadAttention

__all__ = ["measure_receptive_field"]


def measure_receptive_field(windows: Sequence[int | None], T: int, *, embed_dim: int = 8, seed: int = 0) -> int:
    r"""How many input positions the last output of a stack of causal attention layers depends on.

    Builds one residual layer :math:`x \leftarrow x + \operatorname{Attn}_\ell(x)` per entry of
    ``windows`` (a window, or ``None`` for full causal attention), with random float64 weights,
    backpropagates from the output at position :math:`T - 1` and counts the input positions whose
    gradient is not zero. With :math:`L` layers of window :math:`w` that is
    :math:`\min(T, L(w - 1) + 1)`: each layer reaches :math:`w - 1` positions further back.
    Chapter 19.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive integer, got T={T!r}")
    for w in windows:
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= T):
            raise ValueError(f"each window must be None or an integer in [1, T={T}], got window={w!r}")
    gen = torch.Generator().manual_seed(seed)
    layers = [MultiHeadAttention(embed_dim, 2, causal=True, window=w, dtype=torch.float64) for w in windows]
    for layer in layers:
        with torch.no_grad():
            for p in layer.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / embed_dim**0.5)
    x = torch.randn(1, T, embed_dim, generator=gen, dtype=torch.float64, requires_grad=True)
    h = x
    for layer in layers:
        h = h + layer(h)[0]  # (1, T, C)
    h[0, -1].sum().backward()
    return int((x.grad[0].abs().sum(-1) > 0).sum())  # positions t with d out_{T-1} / d x_t != 0
