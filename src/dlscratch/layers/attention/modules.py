r"""Multi-head attention as ``nn.Module`` classes: hand-written and fast (SDPA).

Introduced in chapter 12 (*Attention as modules*). :class:`MultiHeadAttention` owns four
``nn.Linear`` projections and calls the chapter-11 function
:func:`~dlscratch.layers.attention.functional.scaled_dot_product_attention`, so the attention
maths is written once. :class:`FastMultiHeadAttention` has the same parameters (same names, so
state dicts load into either) and calls ``torch.nn.functional.scaled_dot_product_attention``,
which may dispatch to a fused kernel; it returns no weights.

Masks follow the book's convention: ``mask`` is ``True`` where a query **may** attend to a key
(the opposite of ``nn.MultiheadAttention``'s ``attn_mask``, where ``True`` blocks), and
``key_padding_mask`` is ``True`` at padding positions, which no query may attend to (the same as
``nn.MultiheadAttention``).

Symbols: B batch, T query length, S key length, C channels (``embed_dim``), nh heads, hs head
size.
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from .functional import merge_heads, scaled_dot_product_attention, split_heads

__all__ = ["MultiHeadAttention", "FastMultiHeadAttention"]

_M = TypeVar("_M", bound="_MultiHeadProjections")


class _MultiHeadProjections(nn.Module):
    r"""The parameters and plumbing shared by both attention classes (not part of the API).

    Four ``(C, C)`` projections ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``:
    :math:`4C^2` weights plus :math:`4C` biases when ``bias=True``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim={embed_dim} must be divisible by num_heads={num_heads} "
                f"(embed_dim % num_heads = {embed_dim % num_heads})"
            )
        self.embed_dim = embed_dim  # C, the model width
        self.num_heads = num_heads  # nh
        self.head_dim = embed_dim // num_heads  # hs = C / nh
        factory = {"device": device, "dtype": dtype}
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Glorot-uniform input projections and zero biases, as nn.MultiheadAttention does
        for lin in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(lin.weight)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, head_dim={self.head_dim}"

    def _heads(
        self, query: torch.Tensor, key: torch.Tensor | None, value: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = query if key is None else key
        value = key if value is None else value
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3 or t.size(-1) != self.embed_dim:
                raise ValueError(
                    f"{name} must have shape (B, L, embed_dim={self.embed_dim}), got {tuple(t.shape)}"
                )
        if not query.size(0) == key.size(0) == value.size(0):
            raise ValueError(
                f"query, key and value need the same batch size, got {query.size(0)}, {key.size(0)}, {value.size(0)}"
            )
        if key.size(1) != value.size(1):
            raise ValueError(f"key and value need the same length S, got {key.size(1)} and {value.size(1)}")
        q = split_heads(self.q_proj(query), self.num_heads)  # (B, T, C) -> (B, nh, T, hs)
        k = split_heads(self.k_proj(key), self.num_heads)  # (B, S, C) -> (B, nh, S, hs)
        v = split_heads(self.v_proj(value), self.num_heads)  # (B, S, C) -> (B, nh, S, hs)
        return q, k, v

    @staticmethod
    def _allowed(
        mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None, B: int, S: int
    ) -> torch.Tensor | None:
        r"""One bool mask, ``True`` = may attend, broadcastable to :math:`(B, nh, T, S)`."""
        allowed = None
        if mask is not None:
            if mask.dtype != torch.bool:
                raise ValueError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}")
            if mask.dim() not in (2, 3, 4):
                raise ValueError(f"mask must be (T, S), (B, T, S) or (B, nh, T, S), got shape {tuple(mask.shape)}")
            allowed = mask[:, None] if mask.dim() == 3 else mask  # (B, T, S) -> (B, 1, T, S)
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool:
                raise ValueError(
                    f"key_padding_mask must be a bool tensor (True = padding), got dtype {key_padding_mask.dtype}"
                )
            if tuple(key_padding_mask.shape) != (B, S):
                raise ValueError(
                    f"key_padding_mask must have shape (B, S) = {(B, S)}, got {tuple(key_padding_mask.shape)}"
                )
            keep = ~key_padding_mask[:, None, None, :]  # (B, S) -> (B, 1, 1, S)
            allowed = keep if allowed is None else allowed & keep
        return allowed

    def _check_torch(self, mha: nn.MultiheadAttention) -> None:
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"expected an nn.MultiheadAttention, got {type(mha).__name__}")
        if (mha.embed_dim, mha.num_heads) != (self.embed_dim, self.num_heads):
            raise ValueError(
                f"shape mismatch: ours has embed_dim={self.embed_dim}, num_heads={self.num_heads}; "
                f"torch's has embed_dim={mha.embed_dim}, num_heads={mha.num_heads}"
            )
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("only nn.MultiheadAttention with kdim = vdim = embed_dim and no bias_kv/zero_attn")
        if (mha.in_proj_bias is not None) != (self.q_proj.bias is not None):
            raise ValueError(
                f"bias mismatch: ours bias={self.q_proj.bias is not None}, torch's bias={mha.in_proj_bias is not None}"
            )

    @torch.no_grad()
    def load_from_torch(self: _M, mha: nn.MultiheadAttention) -> _M:
        r"""Copy the weights of an ``nn.MultiheadAttention`` into this module; returns ``self``.

        Torch stacks :math:`W_Q, W_K, W_V` into one ``in_proj_weight`` of shape :math:`(3C, C)`
        (and the biases into ``in_proj_bias``, :math:`(3C,)`); ``out_proj`` is a plain linear.
        """
        self._check_torch(mha)
        for lin, w in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_weight.chunk(3)):
            lin.weight.copy_(w)  # (C, C) block of the (3C, C) stack
        if mha.in_proj_bias is not None:
            for lin, b in zip((self.q_proj, self.k_proj, self.v_proj), mha.in_proj_bias.chunk(3)):
                lin.bias.copy_(b)
            self.out_proj.bias.copy_(mha.out_proj.bias)
        self.out_proj.weight.copy_(mha.out_proj.weight)
        return self

    @torch.no_grad()
    def copy_to_torch(self, mha: nn.MultiheadAttention) -> nn.MultiheadAttention:
        r"""Copy this module's weights into an ``nn.MultiheadAttention``; returns ``mha``."""
        self._check_torch(mha)
        mha.in_proj_weight.copy_(torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]))
        if mha.in_proj_bias is not None:
            mha.in_proj_bias.copy_(torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]))
            mha.out_proj.bias.copy_(self.out_proj.bias)
        mha.out_proj.weight.copy_(self.out_proj.weight)
        return mha

    @classmethod
    def from_torch(cls: type[_M], mha: nn.MultiheadAttention) -> _M:
        r"""A new module with the sizes, dtype, device and weights of ``mha``."""
        w = mha.in_proj_weight
        ours = cls(mha.embed_dim, mha.num_heads, bias=mha.in_proj_bias is not None, device=w.device, dtype=w.dtype)
        return ours.load_from_torch(mha)


class MultiHeadAttention(_MultiHeadProjections):
    r"""Multi-head attention, hand-written: four linear maps around the chapter-11 attention.

    .. math::

        \operatorname{head}_h = \operatorname{softmax}\!\left(
            \frac{Q_h K_h^\top}{\sqrt{hs}} + M \right) V_h,
        \qquad
        Y = [\operatorname{head}_1, \ldots, \operatorname{head}_{n_h}]\, W_O^\top + b_O

    with :math:`Q = X_q W_Q^\top + b_Q`, :math:`K = X_k W_K^\top + b_K`,
    :math:`V = X_v W_V^\top + b_V` split into :math:`n_h` heads of :math:`hs = C / n_h` channels,
    and :math:`M_{ij} = -\infty` where query :math:`i` may not attend to key :math:`j`.
    Parameters: :math:`4C^2 + 4C` (:math:`4C^2` without bias). No dropout on the weights.

    Chapter 12, *Attention as modules*. Weights convert to and from ``nn.MultiheadAttention``
    with :meth:`load_from_torch`, :meth:`copy_to_torch` and :meth:`from_torch`.

    Args:
        embed_dim: C, the width of queries, keys, values and output.
        num_heads: nh; must divide ``embed_dim``.
        bias: whether the four projections have biases.
        device: where to allocate the parameters.
        dtype: parameter dtype.

    Shape:
        - query: :math:`(B, T, C)`; key, value: :math:`(B, S, C)` (``key`` defaults to
          ``query``, self-attention; ``value`` defaults to ``key``)
        - mask: :math:`(T, S)`, :math:`(B, T, S)` or :math:`(B, nh, T, S)` bool, ``True`` = may attend
        - key_padding_mask: :math:`(B, S)` bool, ``True`` = padding (ignored)
        - output: :math:`(B, T, C)`; weights: :math:`(B, T, S)` averaged over heads, or
          :math:`(B, nh, T, S)` with ``average_attn_weights=False``
    """

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = True,
        average_attn_weights: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = self._heads(query, key, value)  # (B, nh, T, hs), (B, nh, S, hs), (B, nh, S, hs)
        allowed = self._allowed(mask, key_padding_mask, k.size(0), k.size(2))
        out, weights = scaled_dot_product_attention(q, k, v, mask=allowed, is_causal=is_causal)
        y = self.out_proj(merge_heads(out))  # (B, nh, T, hs) -> (B, T, C) -> (B, T, C)
        if not need_weights:
            return y, None
        return y, weights.mean(dim=1) if average_attn_weights else weights  # (B, T, S) or (B, nh, T, S)


class FastMultiHeadAttention(_MultiHeadProjections):
    r"""Multi-head attention through ``F.scaled_dot_product_attention`` (fused kernels).

    The same parameters and maths as :class:`MultiHeadAttention` (a state dict of one loads into
    the other), but the attention step is PyTorch's, which can pick a FlashAttention or
    memory-efficient kernel and never materialises the weights, so none are returned. For a query
    whose keys are all masked the attention step gives zeros here (the output is then
    ``out_proj``'s bias) and ``nan`` in :class:`MultiHeadAttention`.

    Chapter 12, *Attention as modules*.

    Shape:
        - as :class:`MultiHeadAttention`; output: :math:`(B, T, C)`
    """

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        q, k, v = self._heads(query, key, value)  # (B, nh, T, hs), (B, nh, S, hs), (B, nh, S, hs)
        allowed = self._allowed(mask, key_padding_mask, k.size(0), k.size(2))
        if is_causal and allowed is not None:  # F.sdpa takes one or the other: fold causality in
            T, S = q.size(2), k.size(2)
            allowed = allowed & torch.ones(T, S, dtype=torch.bool, device=q.device).tril()  # (.., T, S)
            is_causal = False
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, is_causal=is_causal)  # (B, nh, T, hs)
        return self.out_proj(merge_heads(out))  # (B, T, C)
