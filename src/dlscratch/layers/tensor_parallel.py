r"""Megatron-style tensor parallelism: column- and row-parallel linear maps, an MLP and attention.

Shoeybi et al. (2019) split a Transformer block's two matrix products across :math:`N` ranks
with one all-reduce in each direction. The first map is split by *columns* (output features),
:math:`A = [A_1, \ldots, A_N]`, so each rank computes :math:`\phi(X A_r)` with no communication
(a GELU, or whole attention heads, act column by column); the second is split by *rows*,
:math:`B = [B_1; \ldots; B_N]`, and the partial products are summed:

.. math::

    Y = \phi(X A) B = \sum_{r=1}^{N} \phi(X A_r)\, B_r .

Two conjugate operators carry the communication: :math:`f` is the identity forward and an
all-reduce of the input's gradient backward (:func:`copy_to_parallel`); :math:`g` is an
all-reduce forward and the identity backward (:func:`reduce_from_parallel`). Each rank holds
:math:`1/N` of the weights. Without an initialised process group (or with one rank) the layers
are the dense ones. Chapter 37, *Scaling out*.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from .attention.functional import merge_heads, scaled_dot_product_attention, split_heads
from .feedforward import ACTIVATIONS

__all__ = [
    "copy_to_parallel",
    "reduce_from_parallel",
    "ColumnParallelLinear",
    "RowParallelLinear",
    "TensorParallelMLP",
    "TensorParallelAttention",
    "check_tp_degree",
]


def _all_reduce(x: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:
    if not dist.is_initialized() or dist.get_world_size(group) == 1:
        return x
    x = x.clone()
    dist.all_reduce(x, group=group)
    return x


class _CopyToParallel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:  # type: ignore[override]
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return _all_reduce(grad, ctx.group), None


class _ReduceFromParallel(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, group: dist.ProcessGroup | None) -> torch.Tensor:  # type: ignore[override]
        return _all_reduce(x, group)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad, None


def copy_to_parallel(x: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    r"""Megatron's :math:`f`: the identity forward; backward, the sum over ranks of the input's gradient."""
    return _CopyToParallel.apply(x, group)


def reduce_from_parallel(x: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    r"""Megatron's :math:`g`: forward, the sum over ranks (all-reduce); backward, the identity."""
    return _ReduceFromParallel.apply(x, group)


def check_tp_degree(name: str, size: int, world_size: int) -> int:
    r"""``size // world_size``, or a ``ValueError`` naming both when ``world_size`` does not divide ``size``."""
    if world_size < 1 or size % world_size:
        raise ValueError(f"tensor-parallel degree {world_size} does not divide {name}={size}: "
                         f"each rank must hold an equal share of the {name}")
    return size // world_size


class ColumnParallelLinear(nn.Module):
    r"""``nn.Linear(in_features, out_features)`` split by output features: rank :math:`r` holds rows
    :math:`[r\,F/N, (r+1)\,F/N)` of the weight (and of the bias) and returns its slice of the output.

    Args:
        in_features: input width :math:`C`.
        out_features: full output width :math:`F` (divisible by ``world_size``).
        world_size: tensor-parallel degree :math:`N`.
        bias: whether each shard has its slice of the bias.

    Shape:
        - x: :math:`(\ldots, C)`; output: :math:`(\ldots, F/N)`
    """

    def __init__(self, in_features: int, out_features: int, world_size: int = 1, *, bias: bool = True) -> None:
        super().__init__()
        self.local = nn.Linear(in_features, check_tp_degree("out_features", out_features, world_size), bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.local(x)  # (..., C) -> (..., F/N)

    def load_dense(self, dense: nn.Linear, rank: int) -> None:
        r"""Copy rank ``rank``'s rows of a dense ``nn.Linear``'s weight and bias."""
        n = self.local.out_features
        with torch.no_grad():
            self.local.weight.copy_(dense.weight[rank * n : (rank + 1) * n])
            if self.local.bias is not None:
                self.local.bias.copy_(dense.bias[rank * n : (rank + 1) * n])


class RowParallelLinear(nn.Module):
    r"""``nn.Linear(in_features, out_features)`` split by input features: rank :math:`r` holds columns
    :math:`[r\,F/N, (r+1)\,F/N)` of the weight, multiplies its slice of the input, and the partial
    products are summed by :func:`reduce_from_parallel`. The bias is added once, after the sum.

    Args:
        in_features: full input width :math:`F` (divisible by ``world_size``).
        out_features: output width :math:`C`.
        world_size: tensor-parallel degree :math:`N`.
        bias: whether to add a (replicated) bias.
        group: the tensor-parallel process group (``None``: the default one).

    Shape:
        - x: :math:`(\ldots, F/N)`; output: :math:`(\ldots, C)`
    """

    def __init__(self, in_features: int, out_features: int, world_size: int = 1, *, bias: bool = True,
                 group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        self.group = group
        self.weight = nn.Parameter(torch.empty(out_features, check_tp_degree("in_features", in_features, world_size)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = reduce_from_parallel(x @ self.weight.T, self.group)  # (..., F/N) @ (F/N, C) -> summed over ranks (..., C)
        return y if self.bias is None else y + self.bias

    def load_dense(self, dense: nn.Linear, rank: int) -> None:
        r"""Copy rank ``rank``'s columns of a dense ``nn.Linear``'s weight, and the whole bias."""
        n = self.weight.shape[1]
        with torch.no_grad():
            self.weight.copy_(dense.weight[:, rank * n : (rank + 1) * n])
            if self.bias is not None:
                self.bias.copy_(dense.bias)


class TensorParallelMLP(nn.Module):
    r"""The kit's :class:`~dlscratch.layers.feedforward.MLP` split over ``world_size`` ranks:
    :math:`f`, a column-parallel ``up``, the activation, a row-parallel ``down`` (whose :math:`g` sums).

    Shape:
        - x: :math:`(B, T, C)` (the same on every rank); output: :math:`(B, T, C)`
    """

    def __init__(self, dim: int, hidden_dim: int, world_size: int = 1, *, activation: str = "gelu",
                 group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        self.group = group
        self.up = ColumnParallelLinear(dim, hidden_dim, world_size)
        self.act = ACTIVATIONS[activation]
        self.down = RowParallelLinear(hidden_dim, dim, world_size, group=group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = copy_to_parallel(x, self.group)  # f
        return self.down(self.act(self.up(x)))  # (B, T, C) -> (B, T, F/N) -> summed (B, T, C)

    def load_dense(self, mlp: nn.Module, rank: int) -> None:
        r"""Copy rank ``rank``'s shards of a dense MLP with ``up`` and ``down`` linear maps."""
        self.up.load_dense(mlp.up, rank)
        self.down.load_dense(mlp.down, rank)


class TensorParallelAttention(nn.Module):
    r"""Causal multi-head self-attention with the heads split over ``world_size`` ranks.

    Each rank owns :math:`n_h/N` whole heads: column-parallel Q, K and V projections (its heads'
    rows), attention on its heads alone, and a row-parallel output projection whose
    :math:`g` sums the heads' contributions. Equal to the kit's
    :class:`~dlscratch.layers.attention.modules.MultiHeadAttention` with ``causal=True``.

    Args:
        embed_dim: :math:`C`.
        num_heads: :math:`n_h`, divisible by ``world_size``.
        world_size: tensor-parallel degree :math:`N`.
        group: the tensor-parallel process group.

    Raises:
        ValueError: if ``world_size`` does not divide ``num_heads``.

    Shape:
        - x: :math:`(B, T, C)`; output: :math:`(B, T, C)`
    """

    def __init__(self, embed_dim: int, num_heads: int, world_size: int = 1, *, group: dist.ProcessGroup | None = None) -> None:
        super().__init__()
        self.group = group
        self.local_heads = check_tp_degree("num_heads", num_heads, world_size)  # nh / N
        width = self.local_heads * (embed_dim // num_heads)  # (nh / N) * hs
        self.q_proj = ColumnParallelLinear(embed_dim, width * world_size, world_size)
        self.k_proj = ColumnParallelLinear(embed_dim, width * world_size, world_size)
        self.v_proj = ColumnParallelLinear(embed_dim, width * world_size, world_size)
        self.out_proj = RowParallelLinear(width * world_size, embed_dim, world_size, group=group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = copy_to_parallel(x, self.group)  # f
        q = split_heads(self.q_proj(x), self.local_heads)  # (B, T, C) -> (B, nh/N, T, hs)
        k = split_heads(self.k_proj(x), self.local_heads)  # (B, nh/N, T, hs)
        v = split_heads(self.v_proj(x), self.local_heads)  # (B, nh/N, T, hs)
        out, _ = scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh/N, T, hs)
        return self.out_proj(merge_heads(out))  # (B, T, nh/N hs) -> summed (B, T, C)

    def load_dense(self, mha: nn.Module, rank: int) -> None:
        r"""Copy rank ``rank``'s heads from a dense attention with ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj``."""
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            getattr(self, name).load_dense(getattr(mha, name), rank)
