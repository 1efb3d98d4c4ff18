r"""The pieces between attention's projections: the position hook, shared key/value heads, attend.

An *attend* function takes the heads' queries, keys and values and returns the attended values
(and the weights, when it forms them). :func:`attend_written` is chapter 11's attention under the
causal and window masks, the default everywhere and the one the book shows;
:func:`attend_sdpa` is the same maths by ``torch.nn.functional.scaled_dot_product_attention``,
for a chapter that opts in by name (``attend="sdpa"``); :func:`~dlscratch.layers.attention.banded.attend_banded`
computes a sliding window block by block (``attend="banded"``, chapter 19). The tests check they are equal.
Introduced in chapter 12; :func:`repeat_kv` in chapter 19, :class:`PositionHook` in chapter 18.

Symbols: B batch, T queries, S keys, nh query heads, nkv key/value heads, hs head size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .banded import attend_banded
from .functional import scaled_dot_product_attention
from .kv_cache import offset_causal_mask

__all__ = ["PositionHook", "repeat_kv", "attend_written", "attend_sdpa", "ATTEND"]


@dataclass(frozen=True)
class PositionHook:
    r"""Where positions enter attention, as two pure functions (chapter 18 plugs RoPE and ALiBi in).

    ``rotate(x, pos)`` maps queries or keys :math:`(B, h, T, hs)` at absolute positions ``pos``
    :math:`(T,)` to rotated ones of the same shape (RoPE); ``bias(q_pos, k_pos)`` returns an
    additive score bias broadcastable to :math:`(nh, T, S)` (ALiBi). Either may be ``None``.
    Under a KV cache the new keys are rotated at their own positions before they are cached.
    """

    rotate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    bias: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    r"""Repeat each key/value head ``n_rep`` times, so :math:`nkv` heads serve :math:`nh = nkv \cdot n_{rep}` queries.

    Query head :math:`h` reads key/value head :math:`\lfloor h / n_{rep} \rfloor` (grouped-query
    attention, Ainslie et al., 2023; :math:`nkv = 1` is multi-query attention). Chapter 19.

    Shape:
        - x: :math:`(B, nkv, S, hs)`; output: :math:`(B, nkv \cdot n_{rep}, S, hs)`
    """
    if n_rep == 1:
        return x
    B, nkv, S, hs = x.shape
    return x[:, :, None].expand(B, nkv, n_rep, S, hs).reshape(B, nkv * n_rep, S, hs)  # (B, nh, S, hs)


def _with_causal_band(mask: torch.Tensor | None, T: int, S: int, offset: int, window: int | None, device: torch.device) -> torch.Tensor:
    band = offset_causal_mask(T, S, offset, window, device)  # (T, S), built once per length
    return band if mask is None else mask & band


def attend_written(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: torch.Tensor | None, causal: bool, offset: int,
    window: int | None, bias: torch.Tensor | None, dropout_p: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""The hand-written attend: chapter 11's attention under the causal (and window) mask.

    With ``causal``, query :math:`i` sits at position ``offset`` :math:`+ i` (``offset``: the
    cached positions) and sees keys up to it (:func:`~dlscratch.layers.attention.kv_cache.offset_causal_mask`).

    Shape:
        - q: :math:`(B, nh, T, hs)`; k, v: :math:`(B, nh, S, hs)`; mask: broadcastable to :math:`(B, nh, T, S)`
        - output: ``(out, weights)``, :math:`(B, nh, T, hs)` and :math:`(B, nh, T, S)`
    """
    if causal:
        mask = _with_causal_band(mask, q.size(2), k.size(2), offset, window, q.device)
    return scaled_dot_product_attention(q, k, v, mask=mask, bias=bias, dropout_p=dropout_p)


def attend_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: torch.Tensor | None, causal: bool, offset: int,
    window: int | None, bias: torch.Tensor | None, dropout_p: float,
) -> tuple[torch.Tensor, None]:
    r"""The same attention by ``F.scaled_dot_product_attention``; no weights.

    The causal mask is left to the kernel where it can: its own ``is_causal`` (top-left aligned)
    with no cached positions, nothing at all for one new token after the cache (it sees every
    key). A query with no allowed key gets zeros here and ``nan`` from :func:`attend_written`.
    """
    T, S = q.size(2), k.size(2)
    plain = mask is None and bias is None and window is None
    if causal and plain and offset == 0:  # the kernel's own mask
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True), None
    if causal and plain and T == 1 and offset == S - 1:  # one new token sees every key
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p), None
    if causal:
        mask = _with_causal_band(mask, T, S, offset, window, q.device)
    if bias is not None:  # one float mask: the bias where allowed, -inf elsewhere
        mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p), None


ATTEND = {"written": attend_written, "sdpa": attend_sdpa, "banded": attend_banded}
