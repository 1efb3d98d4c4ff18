r"""Pruning: masks that zero the smallest weights, the smallest channels, or two of every four weights.

* :func:`magnitude_mask`: unstructured magnitude pruning (Han et al., 2015), as
  ``torch.nn.utils.prune.l1_unstructured``.
* :func:`ln_structured_mask`: whole slices with the smallest :math:`L_n` norm, as
  ``torch.nn.utils.prune.ln_structured``.
* :func:`n_m_mask`: N:M semi-structured sparsity (2:4 on NVIDIA's sparse tensor cores; Mishra et al., 2021).
* :func:`hold_masks`: keep pruned weights at zero while fine-tuning (their gradients masked).
* :func:`sparsity`: the fraction of zeros.
* :func:`shrink_swiglu`: structured pruning that pays: a :class:`~dlscratch.layers.feedforward.SwiGLU`
  rebuilt with only the hidden channels kept, so its matrices are smaller.

Introduced in chapter 36, *Model compression*.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .checks import check_positive_int
from .feedforward import SwiGLU

__all__ = ["magnitude_mask", "ln_structured_mask", "n_m_mask", "hold_masks", "sparsity", "shrink_swiglu"]


def _n_pruned(amount: float, n: int) -> int:
    if isinstance(amount, bool) or not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be a fraction in [0, 1], got amount={amount!r}")
    return round(amount * n)  # torch.nn.utils.prune rounds the same way


def magnitude_mask(w: torch.Tensor, amount: float) -> torch.Tensor:
    r"""Zero the fraction ``amount`` of the weights with the smallest magnitude.

    .. math::

        m_i = \mathbb 1\bigl[\, |w_i| > \tau \,\bigr], \qquad
        \tau = \text{the } k\text{-th smallest } |w_i|, \quad k = \operatorname{round}(\text{amount} \cdot N)

    Returns:
        A mask of ``w``'s shape and dtype: 1 kept, 0 pruned.
    """
    mask = torch.ones_like(w)
    k = _n_pruned(amount, w.numel())
    if k:
        smallest = torch.topk(w.detach().abs().reshape(-1), k, largest=False).indices  # (k,)
        mask.view(-1)[smallest] = 0
    return mask


def ln_structured_mask(w: torch.Tensor, amount: float, n: float = 2, dim: int = 0) -> torch.Tensor:
    r"""Zero the fraction ``amount`` of the slices along ``dim`` (rows: output channels) with the smallest :math:`L_n` norm.

    .. math::

        m_{c,\ldots} = \mathbb 1\bigl[\, c \in \operatorname{top}_{C - k} \lVert w_{c,\ldots} \rVert_n \,\bigr], \qquad
        k = \operatorname{round}(\text{amount} \cdot C)

    Returns:
        A mask of ``w``'s shape and dtype.
    """
    dim = dim % w.dim()
    C = w.shape[dim]
    keep = C - _n_pruned(amount, C)
    other = [d for d in range(w.dim()) if d != dim]
    norms = torch.linalg.vector_norm(w.detach(), ord=n, dim=other)  # (C,)
    kept = torch.zeros(C, dtype=w.dtype, device=w.device)
    kept[torch.topk(norms, keep).indices] = 1
    shape = [1] * w.dim()
    shape[dim] = C
    return kept.view(shape).expand_as(w).clone()


def n_m_mask(w: torch.Tensor, n: int = 2, m: int = 4) -> torch.Tensor:
    r"""Keep the ``n`` largest magnitudes of every ``m`` consecutive weights of a row (2:4: half the weights).

    Raises:
        ValueError: if ``n > m`` or ``m`` does not divide the row.

    Shape:
        - w: :math:`(d_{out}, d_{in})`, :math:`m \mid d_{in}`; output: the same
    """
    check_positive_int("n", n)
    check_positive_int("m", m)
    if n > m:
        raise ValueError(f"an N:M pattern keeps n <= m weights of each m, got n={n}, m={m}")
    rows = w.detach().reshape(w.shape[0], -1)
    if rows.shape[1] % m:
        raise ValueError(f"m={m} does not divide the row of {rows.shape[1]} weights ({rows.shape[1]} % {m} = {rows.shape[1] % m})")
    groups = rows.abs().reshape(-1, m)  # (d_out * d_in / m, m)
    mask = torch.zeros_like(groups)
    mask.scatter_(1, torch.topk(groups, n, dim=1).indices, 1.0)  # the n largest of each group
    return mask.reshape(w.shape)


def hold_masks(pairs: Iterable[tuple[nn.Parameter, torch.Tensor]]) -> list[torch.utils.hooks.RemovableHandle]:
    r"""Zero each parameter where its mask is 0 and keep it there: every gradient is multiplied by the mask.

    With a zero gradient from the first step, Adam's moments stay zero for a pruned weight and it
    never moves; decoupled weight decay keeps a zero at zero. Returns the hook handles
    (``handle.remove()`` ends the hold).
    """
    handles = []
    for p, mask in pairs:
        with torch.no_grad():
            p.mul_(mask)
        handles.append(p.register_hook(lambda g, mask=mask: g * mask))
    return handles


def sparsity(tensors: Iterable[torch.Tensor]) -> float:
    r"""The fraction of exact zeros over all ``tensors``."""
    zeros, total = 0, 0
    for t in tensors:
        zeros += int((t == 0).sum())
        total += t.numel()
    return zeros / max(total, 1)


def shrink_swiglu(mlp: SwiGLU, keep: torch.Tensor) -> SwiGLU:
    r"""A smaller :class:`~dlscratch.layers.feedforward.SwiGLU` with only the hidden channels ``keep``.

    Hidden channel :math:`j` is row :math:`j` of the gate and up matrices and column :math:`j` of the
    down matrix; removing it removes exactly its term of
    :math:`\sum_j W^\text{down}_{:,j}\, \operatorname{SiLU}(\mathbf g_j \cdot \mathbf x)(\mathbf u_j \cdot \mathbf x)`.
    The new layer computes what the old one computes with those channels zeroed, with
    :math:`F' = |\text{keep}|` instead of :math:`F` rows: fewer FLOPs, a real speed-up.

    Shape:
        - keep: :math:`(F',)` indices in :math:`[0, F)`
    """
    dim, bias = mlp.gate.in_features, mlp.gate.bias is not None
    small = SwiGLU(dim, keep.numel(), bias=bias, dropout=mlp.dropout.p).to(mlp.gate.weight)
    with torch.no_grad():
        for name in ("gate", "up"):
            getattr(small, name).weight.copy_(getattr(mlp, name).weight[keep])  # (F', C)
            if bias:
                getattr(small, name).bias.copy_(getattr(mlp, name).bias[keep])
        small.down.weight.copy_(mlp.down.weight[:, keep])  # (C, F')
        if bias:
            small.down.bias.copy_(mlp.down.bias)
    return small
