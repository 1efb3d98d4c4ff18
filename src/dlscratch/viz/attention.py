r"""Attention maps: one labelled heatmap of attention weights, the same in every chapter.

A map shows one row per query and one column per key, each cell the weight
:math:`\alpha_{ij} = \operatorname{softmax}_j(s_{ij})` that query :math:`i` puts on key :math:`j`
(each row sums to 1). Used from chapter 11 on. :func:`attention_rollout` (chapter 33) follows
attention through every layer of a Transformer, residual connections included.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.axes import Axes
from matplotlib.image import AxesImage

__all__ = ["attention_map", "attention_rollout"]


def _as_matrix(weights: torch.Tensor, head: int | None) -> torch.Tensor:
    w = torch.as_tensor(weights).detach().float().cpu()
    if w.dim() == 4:  # (B, nh, T, S): the first sequence of the batch
        w = w[0]
    if w.dim() == 3:  # (nh, T, S): one head, or the mean over heads
        if head is not None and not 0 <= head < w.size(0):
            raise ValueError(f"head must be in [0, {w.size(0)}), got head={head}")
        w = w.mean(0) if head is None else w[head]
    elif head is not None:
        raise ValueError(f"head={head} given, but the weights have no head axis (shape {tuple(w.shape)})")
    if w.dim() != 2:
        raise ValueError(f"attention weights must be (T, S), (nh, T, S) or (B, nh, T, S), got shape {tuple(weights.shape)}")
    return w


def _tick_labels(labels: Sequence[str] | None, n: int, axis: str) -> Sequence[str] | None:
    if labels is not None and len(labels) != n:
        raise ValueError(f"{axis} labels: expected {n} (one per {axis}), got {len(labels)}")
    return labels


def attention_map(
    ax: Axes,
    weights: torch.Tensor,
    *,
    head: int | None = None,
    layer: int | None = None,
    queries: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str = "key",
    ylabel: str = "query",
    vmax: float = 1.0,
    rotation: float = 90.0,
) -> AxesImage:
    r"""Draw attention weights on ``ax`` as a heatmap with labelled axes; returns the image (for a colorbar).

    Args:
        ax: the matplotlib axes to draw on.
        weights: :math:`(T, S)`, :math:`(nh, T, S)` or :math:`(B, nh, T, S)` (the first sequence),
            e.g. a layer's ``last_weights``.
        head: which head of a multi-head tensor (counted from 0); ``None`` averages over heads.
        layer: the layer's index (counted from 0), for the default title.
        queries, keys: one tick label per query row and per key column (tokens); ``None``: positions.
        title: overrides the title built from ``layer`` and ``head``.
        xlabel, ylabel: axis labels.
        vmax: the weight drawn brightest (1 by default, so maps are comparable).
        rotation: angle of the key labels.

    Raises:
        ValueError: if the weights have another shape, ``head`` is out of range, or a label list
            does not have one entry per row or column.
    """
    w = _as_matrix(weights, head)
    T, S = w.shape
    im = ax.imshow(w.numpy(), cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    q_labels, k_labels = _tick_labels(queries, T, "query"), _tick_labels(keys, S, "key")
    if k_labels is not None:
        ax.set_xticks(range(S), k_labels, rotation=rotation)
    if q_labels is not None:
        ax.set_yticks(range(T), q_labels)
    if title is None:
        parts = [] if layer is None else [f"layer {layer + 1}"]
        if head is not None:
            parts.append(f"head {head + 1}")
        elif torch.as_tensor(weights).dim() >= 3:
            parts.append("mean over heads")
        title = ", ".join(parts)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(False)
    return im


def attention_rollout(weights: Sequence[torch.Tensor], residual: float = 0.5) -> torch.Tensor:
    r"""Attention rollout (Abnar & Zuidema, 2020): how much each output token draws on each input token.

    Each layer's weights are averaged over the heads, mixed with the identity for the residual
    connection, and the layers are multiplied from the first to the last:

    .. math::

        \hat{A}_\ell = (1 - r)\, \bar{A}_\ell + r\, I, \qquad
        \bar{A}_\ell = \frac{1}{n_h} \sum_h A_\ell^{(h)}, \qquad
        R = \hat{A}_L \hat{A}_{L-1} \cdots \hat{A}_1

    with :math:`r` = ``residual`` (the paper's 0.5). Every row of :math:`R` sums to 1: row
    :math:`t` spreads output token :math:`t` over the input tokens. Chapter 33.

    Args:
        weights: one tensor per layer, first layer first, each :math:`(B, nh, T, T)` (rows sum to 1).
        residual: the weight :math:`r \in [0, 1]` of the identity.

    Shape:
        - output: :math:`(B, T, T)`

    Raises:
        ValueError: if ``weights`` is empty, a tensor is not :math:`(B, nh, T, T)` like the first,
            or ``residual`` is outside :math:`[0, 1]`.
    """
    if len(weights) == 0:
        raise ValueError("attention_rollout needs the weights of at least one layer, got none")
    if not 0.0 <= residual <= 1.0:
        raise ValueError(f"residual must be in [0, 1], got {residual!r}")
    first = weights[0]
    for i, w in enumerate(weights):
        if w.dim() != 4 or w.shape[-1] != w.shape[-2] or w.shape[0] != first.shape[0] or w.shape[-1] != first.shape[-1]:
            raise ValueError(f"layer {i}: expected weights (B, nh, T, T) shaped like layer 0's {tuple(first.shape)}, got {tuple(w.shape)}")
    B, _, T, _ = first.shape
    eye = torch.eye(T, dtype=first.dtype, device=first.device)  # (T, T)
    rollout = eye.expand(B, T, T)
    for w in weights:
        a = (1.0 - residual) * w.mean(dim=1) + residual * eye  # (B, T, T)
        rollout = a @ rollout  # (B, T, T) @ (B, T, T): this layer after the ones below it
    return rollout
