r"""Multi-head attention as one ``nn.Module``: self- and cross-attention, MHA/GQA/MQA, a KV cache.

Introduced in chapter 12 (*Attention as modules*) and extended by the chapters that build on it:
the KV cache (17), rotary and ALiBi positions (18), grouped-query attention and sliding windows
(19). :class:`MultiHeadAttention` owns four ``nn.Linear`` projections and hands the heads to an
*attend* function chosen by name: ``"written"`` (the default, the chapter-11
:func:`~dlscratch.layers.attention.functional.scaled_dot_product_attention`, which the book shows)
or ``"sdpa"`` (``torch.nn.functional.scaled_dot_product_attention``, which may run a fused kernel
and returns no weights). The two are tested equal.

Masks follow the book's convention: ``mask`` is ``True`` where a query **may** attend to a key
(the opposite of ``nn.MultiheadAttention``'s ``attn_mask``, where ``True`` blocks), and
``key_padding_mask`` is ``True`` at padding positions, which no query may attend to (the same as
``nn.MultiheadAttention``). Causal and sliding-window masks are built once per length and cached
(:func:`~dlscratch.layers.attention.kv_cache.offset_causal_mask`).

Symbols: B batch, T query length, S key length, C channels (``embed_dim``), nh query heads,
nkv key/value heads, hs head size.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from torch import nn

from ..checks import check_positive_int
from .attend import ATTEND, PositionHook, repeat_kv
from .functional import merge_heads, split_heads
from .kv_cache import KVCache, RollingKVCache

__all__ = ["MultiHeadAttention", "start_kv_caches", "stop_kv_caches"]

_M = TypeVar("_M", bound="MultiHeadAttention")


class MultiHeadAttention(nn.Module):
    r"""Multi-head attention: four linear maps around an attend function.

    .. math::

        \operatorname{head}_h = \operatorname{softmax}\!\left(
            \frac{Q_h K_{g(h)}^\top}{\sqrt{hs}} + M \right) V_{g(h)},
        \qquad
        Y = [\operatorname{head}_1, \ldots, \operatorname{head}_{n_h}]\, W_O^\top + b_O

    with :math:`Q = X_q W_Q^\top + b_Q`, :math:`K = X_k W_K^\top + b_K`,
    :math:`V = X_v W_V^\top + b_V` split into heads of :math:`hs = C / n_h` channels, and
    :math:`M_{ij} = -\infty` where query :math:`i` may not attend to key :math:`j`. With
    ``num_kv_heads`` :math:`= n_h` (the default) :math:`g(h) = h`: multi-head attention;
    with fewer, query head :math:`h` shares key/value head :math:`g(h) = \lfloor h\, n_{kv} / n_h \rfloor`
    (GQA; MQA for one). Parameters: :math:`2C^2 + 2 C \cdot n_{kv}\, hs` plus biases
    (:math:`4C^2 + 4C` for MHA with bias).

    Self-attention when ``key`` is ``None``. A causal layer (``causal=True``) may hold a
    :class:`~dlscratch.layers.attention.kv_cache.KVCache` in ``cache``: its queries then sit
    after the cached positions and their keys and values are appended to it. Set
    ``keep_weights = True`` to keep the last weights in ``last_weights`` :math:`(B, nh, T, S)`.

    Chapter 12, *Attention as modules*. Weights convert to and from ``nn.MultiheadAttention``
    with :meth:`load_from_torch`, :meth:`copy_to_torch` and :meth:`from_torch`.

    Args:
        embed_dim: C, the width of queries, keys, values and output.
        num_heads: nh; must divide ``embed_dim``.
        num_kv_heads: nkv, must divide ``num_heads`` (``None``: ``num_heads``).
        bias: whether the four projections have biases.
        dropout: drop probability on the attention weights (training only).
        causal: the layer's default for ``is_causal`` (a decoder's self-attention); only a causal
            layer can hold a KV cache.
        window: a sliding window of this many keys (needs causal attention; ``None``: all).
        attend: ``"written"``, ``"sdpa"`` or ``"banded"`` (a sliding window block by block, chapter 19).
        device: where to allocate the parameters.
        dtype: parameter dtype.

    Shape:
        - query: :math:`(B, T, C)`; key, value: :math:`(B, S, C)` (``key`` defaults to
          ``query``, self-attention; ``value`` defaults to ``key``)
        - mask: :math:`(T, S)`, :math:`(B, T, S)` or :math:`(B, nh, T, S)` bool, ``True`` = may attend
        - key_padding_mask: :math:`(B, S)` bool, ``True`` = padding (ignored)
        - output: ``(y, weights)``, y :math:`(B, T, C)`; weights :math:`(B, T, S)` averaged over
          heads, :math:`(B, nh, T, S)` with ``average_attn_weights=False``, or ``None``
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        *,
        bias: bool = True,
        dropout: float = 0.0,
        causal: bool = False,
        window: int | None = None,
        attend: str = "written",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        self._check_config(embed_dim, num_heads, num_kv_heads, dropout, causal, window, attend)
        self.embed_dim, self.num_heads, self.num_kv_heads = embed_dim, num_heads, num_kv_heads  # C, nh, nkv
        self.head_dim = embed_dim // num_heads  # hs = C / nh
        self.dropout, self.causal, self.window, self.attend = dropout, causal, window, attend
        self.attend_fn = ATTEND[attend]
        factory = {"device": device, "dtype": dtype}
        kv_dim = num_kv_heads * self.head_dim
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.k_proj = nn.Linear(embed_dim, kv_dim, bias=bias, **factory)
        self.v_proj = nn.Linear(embed_dim, kv_dim, bias=bias, **factory)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.positions: PositionHook | None = None  # rotary / additive-bias positions (chapter 18)
        self.cache: KVCache | RollingKVCache | None = None  # set by start_kv_caches for cached decoding
        self.keep_weights = False  # set True to keep the attention weights of the last call
        self.last_weights: torch.Tensor | None = None
        self._reset_parameters()

    @staticmethod
    def _check_config(C: int, nh: int, nkv: int, dropout: float, causal: bool, window: int | None, attend: str) -> None:
        for name, value in (("embed_dim", C), ("num_heads", nh), ("num_kv_heads", nkv)):
            check_positive_int(name, value)
        if C % nh != 0:
            raise ValueError(f"embed_dim={C} must be divisible by num_heads={nh} (embed_dim % num_heads = {C % nh})")
        if nh % nkv != 0:
            raise ValueError(f"num_heads={nh} must be a multiple of num_kv_heads={nkv}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if window is not None and (not causal or isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ValueError(f"a sliding window needs causal=True and a positive integer, got causal={causal}, window={window!r}")
        if attend not in ATTEND:
            raise ValueError(f"unknown attend {attend!r}; expected one of {sorted(ATTEND)}")
        if attend == "banded" and window is None:
            raise ValueError("attend='banded' computes a sliding window: give window=w (and causal=True)")

    def _reset_parameters(self) -> None:
        # Glorot-uniform over the stacked (q, k, v) input projection and zero biases, as
        # nn.MultiheadAttention initialises its (3C, C) in_proj_weight; out_proj keeps nn.Linear's init
        fan_out = self.q_proj.out_features + self.k_proj.out_features + self.v_proj.out_features
        bound = math.sqrt(6.0 / (self.embed_dim + fan_out))
        for lin in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.uniform_(lin.weight, -bound, bound)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def extra_repr(self) -> str:
        extras = f", window={self.window}" if self.window is not None else ""
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}, "
                f"head_dim={self.head_dim}, causal={self.causal}, attend={self.attend!r}{extras}")

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        is_causal: bool | None = None,
        need_weights: bool = True,
        average_attn_weights: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        self_attention = key is None
        key = query if key is None else key
        value = key if value is None else value
        self._check_inputs(query, key, value)
        q = split_heads(self.q_proj(query), self.num_heads)  # (B, T, C) -> (B, nh, T, hs)
        k = split_heads(self.k_proj(key), self.num_kv_heads)  # (B, S, nkv hs) -> (B, nkv, S, hs)
        v = split_heads(self.v_proj(value), self.num_kv_heads)  # (B, nkv, S, hs)
        allowed = self._allowed(mask, key_padding_mask, q.size(0), k.size(2) + self._cached(self_attention))
        causal = self.causal if is_causal is None else is_causal
        out, weights = self.attend_heads(q, k, v, mask=allowed, causal=causal, self_attention=self_attention)
        y = self.out_proj(merge_heads(out))  # (B, nh, T, hs) -> (B, T, C) -> (B, T, C)
        if weights is None or not need_weights:
            return y, None
        return y, weights.mean(dim=1) if average_attn_weights else weights  # (B, T, S) or (B, nh, T, S)

    def attend_heads(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: torch.Tensor | None = None,
        causal: bool = True, self_attention: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""Positions, cache, shared key/value heads, attend: everything between the projections.

        Shape:
            - q: :math:`(B, nh, T, hs)`; k, v: :math:`(B, nkv, S_{new}, hs)`
            - output: ``(out, weights)``, :math:`(B, nh, T, hs)` and :math:`(B, nh, T, S)` or ``None``
        """
        T = q.size(2)
        cache = self.cache if self_attention else None
        offset = 0 if cache is None else cache.length  # positions already cached
        hook = self.positions if self_attention else None  # positions are a self-attention matter
        if hook is not None:
            pos = torch.arange(offset, offset + T, device=q.device)  # (T,) absolute positions of the new tokens
        if hook is not None and hook.rotate is not None:
            q, k = hook.rotate(q, pos), hook.rotate(k, pos)
        if cache is not None:
            if not causal:
                raise ValueError("a KV cache needs causal self-attention (is_causal=True)")
            k, v = cache.append(k, v)  # (B, nkv, S, hs): the cached keys it returns, then the T new ones
        S = k.size(2)
        key_offset = 0 if cache is None else offset + T - S  # position of the first key (a rolling cache drops old ones)
        bias = None
        if hook is not None and hook.bias is not None:
            bias = hook.bias(pos, torch.arange(key_offset, key_offset + S, device=q.device))  # keys' positions
        if self.num_kv_heads != self.num_heads:  # each key/value head serves n_rep query heads
            n_rep = self.num_heads // self.num_kv_heads
            k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, nh, S, hs)
        dropout_p = self.dropout if self.training else 0.0
        out, weights = self.attend_fn(  # the queries sit after the S - T keys before them
            q, k, v, mask=mask, causal=causal, offset=offset - key_offset, window=self.window, bias=bias, dropout_p=dropout_p
        )
        if self.keep_weights and weights is not None:
            self.last_weights = weights.detach()  # (B, nh, T, S)
        return out, weights

    def _cached(self, self_attention: bool) -> int:
        return self.cache.length if self_attention and self.cache is not None else 0

    def _check_inputs(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
        for name, t in (("query", query), ("key", key), ("value", value)):
            if t.dim() != 3 or t.size(-1) != self.embed_dim:
                raise ValueError(f"{name} must have shape (B, L, embed_dim={self.embed_dim}), got {tuple(t.shape)}")
        if not query.size(0) == key.size(0) == value.size(0):
            raise ValueError(
                f"query, key and value need the same batch size, got {query.size(0)}, {key.size(0)}, {value.size(0)}"
            )
        if key.size(1) != value.size(1):
            raise ValueError(f"key and value need the same length S, got {key.size(1)} and {value.size(1)}")

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
        if (mha.embed_dim, mha.num_heads, mha.num_heads) != (self.embed_dim, self.num_heads, self.num_kv_heads):
            raise ValueError(
                f"shape mismatch: ours has embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"num_kv_heads={self.num_kv_heads}; torch's has embed_dim={mha.embed_dim}, num_heads={mha.num_heads}"
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
    def from_torch(cls: type[_M], mha: nn.MultiheadAttention, **kwargs: object) -> _M:
        r"""A new module with the sizes, dtype, device and weights of ``mha`` (``kwargs``: e.g. ``attend``)."""
        w = mha.in_proj_weight
        ours = cls(mha.embed_dim, mha.num_heads, bias=mha.in_proj_bias is not None, device=w.device, dtype=w.dtype, **kwargs)
        return ours.load_from_torch(mha)


def _causal_layers(model: nn.Module) -> list[MultiHeadAttention]:
    return [m for m in model.modules() if isinstance(m, MultiHeadAttention) and m.causal]


def start_kv_caches(model: nn.Module, batch_size: int, max_len: int, *, rolling: bool = False) -> int:
    r"""Give every causal self-attention layer of ``model`` an empty KV cache; returns their bytes.

    The buffers take the device and dtype of each layer's weights: a
    :class:`~dlscratch.layers.attention.kv_cache.KVCache` of ``max_len`` positions, or with
    ``rolling``, for a layer whose sliding window is shorter than ``max_len``, a
    :class:`~dlscratch.layers.attention.kv_cache.RollingKVCache` of ``window`` slots (chapter 19).
    Chapter 17, *GPT*.
    """
    layers = _causal_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no causal self-attention layer to cache")
    for attn in layers:
        w = attn.k_proj.weight
        if rolling and attn.window is not None and attn.window < max_len:
            attn.cache = RollingKVCache(batch_size, attn.num_kv_heads, attn.window, attn.head_dim, device=w.device, dtype=w.dtype)
        else:
            attn.cache = KVCache(batch_size, attn.num_kv_heads, max_len, attn.head_dim, device=w.device, dtype=w.dtype)
    return sum(attn.cache.nbytes() for attn in layers if attn.cache is not None)


def stop_kv_caches(model: nn.Module) -> None:
    r"""Remove the KV caches of every causal self-attention layer of ``model``."""
    for attn in _causal_layers(model):
        attn.cache = None
