r"""Attention as pure functions on tensors: masks, scaled dot-product attention, multi-head.

Introduced in chapter 11 (*Attention from scratch*). Everything is batch-first and written with
raw tensor ops (matmul, ``masked_fill``, our own :func:`~dlscratch.layers.activations.softmax`),
so each line maps to one equation of the chapter. The ``nn.Module`` attention classes of later
chapters live in sibling files of this package and call these functions.

Symbols: B batch, T query length, S key length, C channels (d_model), nh heads, hs head size.
"""

from __future__ import annotations

import math

import torch

from ..activations import softmax
from ..dropout import dropout

__all__ = [
    "causal_mask",
    "scaled_dot_product_attention",
    "split_heads",
    "merge_heads",
    "multi_head_attention_loop",
    "multi_head_attention",
]


def causal_mask(T: int, device: torch.device | str | None = None) -> torch.Tensor:
    r"""Boolean causal mask: query :math:`i` may attend to key :math:`j` iff :math:`j \le i`.

    .. math::

        M_{ij} = [\, j \le i \,]

    Chapter 11, *Attention from scratch*, section on causal masking.

    Args:
        T: sequence length (at least 1).
        device: where to allocate the mask.

    Returns:
        A lower-triangular ``bool`` tensor; ``True`` means "may attend".

    Shape:
        - output: :math:`(T, T)`
    """
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"causal_mask needs a positive integer length T, got {T!r}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T)


def _check_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> None:
    r"""The shape and dtype checks of :func:`scaled_dot_product_attention` (not part of the maths)."""
    if q.dim() < 2 or not q.dim() == k.dim() == v.dim():
        raise ValueError(
            "q, k and v must have the same rank, at least 2 (..., T, hs); "
            f"got q.dim()={q.dim()}, k.dim()={k.dim()}, v.dim()={v.dim()}"
        )
    if q.size(-1) != k.size(-1):
        raise ValueError(f"q and k must share the head size: q has {q.size(-1)}, k has {k.size(-1)}")
    if k.size(-2) != v.size(-2):
        raise ValueError(f"k and v must have the same length S: k has {k.size(-2)}, v has {v.size(-2)}")
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}")
        target = (*q.shape[:-2], q.size(-2), k.size(-2))
        try:
            torch.broadcast_shapes(mask.shape, target)
        except RuntimeError as err:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to (..., T, S) = {target}") from err


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    bias: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Scaled dot-product attention, returning the output and the attention weights.

    .. math::

        \operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(
            \frac{Q K^\top}{\sqrt{d_k}} + B + M \right) V,
        \qquad M_{ij} = \begin{cases} 0 & \text{if query } i \text{ may attend to key } j \\ -\infty & \text{otherwise} \end{cases}

    ``is_causal=True`` uses the top-left-aligned mask :math:`j \le i` (as
    ``torch.nn.functional.scaled_dot_product_attention`` does); given together with ``mask``
    the two are combined (a key must pass both). ``bias`` is an additive score bias :math:`B`
    (ALiBi's distance penalties, chapter 18). A query row with no allowed key has no defined
    softmax and gives ``nan`` (PyTorch's kernel returns zeros there). ``dropout_p`` drops
    attention weights in training (inverted dropout, the returned weights are the undropped ones).

    Chapter 11, *Attention from scratch*.

    Args:
        q: queries.
        k: keys, same head size as ``q``.
        v: values, same length as ``k``.
        mask: ``bool``, ``True`` = may attend, broadcastable to :math:`(\ldots, T, S)`.
        is_causal: apply the causal mask :math:`j \le i`.
        scale: multiplies the logits; :math:`1/\sqrt{hs}` when ``None``.
        bias: added to the scaled logits, broadcastable to :math:`(\ldots, T, S)`.
        dropout_p: probability of dropping each attention weight.

    Returns:
        ``(out, weights)``: the attended values and the softmax weights (rows sum to 1).

    Shape:
        - q: :math:`(\ldots, T, hs)`; k: :math:`(\ldots, S, hs)`; v: :math:`(\ldots, S, hs_v)`
        - out: :math:`(\ldots, T, hs_v)`; weights: :math:`(\ldots, T, S)`
    """
    _check_sdpa(q, k, v, mask)
    if is_causal:
        tril = torch.ones(q.size(-2), k.size(-2), dtype=torch.bool, device=q.device).tril()  # (T, S)
        mask = tril if mask is None else mask & tril
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale

    att = (q @ k.transpose(-2, -1)) * scale  # (..., T, hs) @ (..., hs, S) -> (..., T, S)
    if bias is not None:
        att = att + bias  # (..., T, S)
    if mask is not None:
        att = att.masked_fill(~mask, float("-inf"))  # (..., T, S)
    weights = softmax(att, dim=-1)  # (..., T, S), each row sums to 1
    out = dropout(weights, dropout_p) @ v  # (..., T, S) @ (..., S, hs_v) -> (..., T, hs_v)
    return out, weights


def _check_heads(C: int, n_head: int) -> int:
    if not isinstance(n_head, int) or n_head < 1:
        raise ValueError(f"n_head must be a positive integer, got {n_head!r}")
    if C % n_head != 0:
        raise ValueError(f"channels C={C} must be divisible by n_head={n_head} (C % n_head = {C % n_head})")
    return C // n_head


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    r"""Split the channels into ``n_head`` heads of size :math:`hs = C / n_{head}`.

    Chapter 11, *Attention from scratch*, multi-head section.

    Shape:
        - x: :math:`(B, T, C)`
        - output: :math:`(B, nh, T, hs)`
    """
    if x.dim() != 3:
        raise ValueError(f"split_heads expects (B, T, C), got rank {x.dim()} and shape {tuple(x.shape)}")
    B, T, C = x.shape
    hs = _check_heads(C, n_head)
    return x.view(B, T, n_head, hs).transpose(1, 2)  # (B, T, nh, hs) -> (B, nh, T, hs)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    r"""Inverse of :func:`split_heads`: concatenate the heads back into the channels.

    Chapter 11, *Attention from scratch*, multi-head section.

    Shape:
        - x: :math:`(B, nh, T, hs)`
        - output: :math:`(B, T, nh \cdot hs)`
    """
    if x.dim() != 4:
        raise ValueError(f"merge_heads expects (B, nh, T, hs), got rank {x.dim()} and shape {tuple(x.shape)}")
    B, nh, T, hs = x.shape
    return x.transpose(1, 2).contiguous().view(B, T, nh * hs)  # (B, T, nh, hs) -> (B, T, C)


def _check_mha(x: torch.Tensor, weights: dict[str, torch.Tensor], n_head: int) -> int:
    if x.dim() != 3:
        raise ValueError(f"multi-head attention expects x as (B, T, C), got rank {x.dim()} shape {tuple(x.shape)}")
    C = x.size(-1)
    for name, w in weights.items():
        if tuple(w.shape) != (C, C):
            raise ValueError(f"{name} must have shape (C, C) = {(C, C)}, got {tuple(w.shape)}")
    return _check_heads(C, n_head)


def multi_head_attention_loop(
    x: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    w_o: torch.Tensor,
    n_head: int,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Multi-head self-attention, one head at a time (the definition, written as a loop).

    .. math::

        \operatorname{head}_h = \operatorname{Attention}(X W_Q^{(h)\top}, X W_K^{(h)\top}, X W_V^{(h)\top}),
        \qquad Y = [\operatorname{head}_1, \ldots, \operatorname{head}_{n_h}]\, W_O^\top

    where :math:`W^{(h)}` is the block of rows :math:`h \cdot hs \ldots (h+1) \cdot hs - 1` of
    :math:`W`. Weights are stored like ``nn.Linear`` weights, so a projection is ``x @ W.T``.

    Chapter 11, *Attention from scratch*.

    Returns:
        ``(y, weights)``: the output and the per-head attention weights.

    Shape:
        - x: :math:`(B, T, C)`; w_q, w_k, w_v, w_o: :math:`(C, C)`
        - y: :math:`(B, T, C)`; weights: :math:`(B, nh, T, T)`
    """
    hs = _check_mha(x, {"w_q": w_q, "w_k": w_k, "w_v": w_v, "w_o": w_o}, n_head)
    heads, maps = [], []
    for h in range(n_head):
        rows = slice(h * hs, (h + 1) * hs)
        q = x @ w_q[rows].T  # (B, T, C) @ (C, hs) -> (B, T, hs)
        k = x @ w_k[rows].T  # (B, T, hs)
        v = x @ w_v[rows].T  # (B, T, hs)
        out, att = scaled_dot_product_attention(q, k, v, is_causal=is_causal)  # (B, T, hs), (B, T, T)
        heads.append(out)
        maps.append(att)
    y = torch.cat(heads, dim=-1)  # (B, T, nh * hs) = (B, T, C)
    return y @ w_o.T, torch.stack(maps, dim=1)  # (B, T, C), (B, nh, T, T)


def multi_head_attention(
    x: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    w_o: torch.Tensor,
    n_head: int,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Multi-head self-attention with all heads in one batched matmul.

    Same maths as :func:`multi_head_attention_loop`: project once with the full :math:`(C, C)`
    matrices, :func:`split_heads` so the heads become a batch dimension, attend, then
    :func:`merge_heads` and project with :math:`W_O`.

    Chapter 11, *Attention from scratch*.

    Returns:
        ``(y, weights)``: the output and the per-head attention weights.

    Shape:
        - x: :math:`(B, T, C)`; w_q, w_k, w_v, w_o: :math:`(C, C)`
        - y: :math:`(B, T, C)`; weights: :math:`(B, nh, T, T)`
    """
    _check_mha(x, {"w_q": w_q, "w_k": w_k, "w_v": w_v, "w_o": w_o}, n_head)
    q = split_heads(x @ w_q.T, n_head)  # (B, T, C) -> (B, nh, T, hs)
    k = split_heads(x @ w_k.T, n_head)  # (B, nh, T, hs)
    v = split_heads(x @ w_v.T, n_head)  # (B, nh, T, hs)
    out, att = scaled_dot_product_attention(q, k, v, is_causal=is_causal)  # (B, nh, T, hs), (B, nh, T, T)
    y = merge_heads(out)  # (B, T, C)
    return y @ w_o.T, att  # (B, T, C) @ (C, C) -> (B, T, C)
