r"""Sliding-window attention computed band by band, in :math:`O(T \cdot w)` time and memory.

Under a sliding window of :math:`w` keys, query :math:`i` reads keys :math:`i - w + 1 \ldots i`.
:func:`~dlscratch.layers.attention.attend.attend_written` forms the whole :math:`T \times T`
score matrix and masks all but a band of width :math:`w` of it: :math:`O(T^2)` work and memory
for :math:`O(T w)` useful entries. :func:`attend_banded` cuts the sequence into blocks of
:math:`w` positions; the queries of block :math:`b` can only read keys of blocks :math:`b - 1`
and :math:`b`, so each block is one small attention of :math:`w` queries over :math:`2w` keys
(Longformer's chunked form, Beltagy et al., 2020). It is registered as ``attend="banded"``.

Chapter 19, *MQA, GQA and sliding-window attention*. Symbols: B batch, nh heads, T length,
w window, n = ceil(T / w) blocks, hs head size.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .functional import scaled_dot_product_attention
from .kv_cache import offset_causal_mask

__all__ = ["band_block_mask", "attend_banded"]


@functools.lru_cache(maxsize=64)
def _band_block_mask(n: int, w: int, device: torch.device) -> torch.Tensor:
    r = torch.arange(w, device=device)[:, None]  # (w, 1) query offset in its block
    c = torch.arange(2 * w, device=device)[None, :]  # (1, 2w) key offset in [previous block | own block]
    allowed = (c > r) & (c <= r + w)  # key position (b-1) w + c in (b w + r - w, b w + r]
    mask = allowed.expand(n, w, 2 * w).clone()  # (n, w, 2w)
    mask[0, :, :w] = False  # block 0 has no previous block: those keys are padding
    return mask


def band_block_mask(n: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    r"""Which of the :math:`2w` keys of its two blocks each query of each block may read.

    Query :math:`r` of block :math:`b` sits at position :math:`bw + r`; key :math:`c` of the
    pair (previous block, own block) at :math:`(b - 1)w + c`. The window allows

    .. math::

        bw + r - w < (b - 1)w + c \le bw + r \iff r < c \le r + w,

    the same for every block except block 0, whose previous block does not exist. Built once
    per ``(n, w, device)``; treat it as read-only.

    Shape:
        - output: :math:`(n, w, 2w)` bool, ``True`` = may attend
    """
    return _band_block_mask(n, w, torch.device(device if device is not None else "cpu"))


def attend_banded(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: torch.Tensor | None, causal: bool, offset: int,
    window: int | None, bias: torch.Tensor | None, dropout_p: float,
) -> tuple[torch.Tensor, None]:
    r"""Causal sliding-window attention, one block of :math:`w` queries against :math:`2w` keys at a time.

    .. math::

        \operatorname{out}_{B_b} = \operatorname{softmax}\!\left(
            \frac{Q_{B_b} [K_{B_{b-1}}; K_{B_b}]^\top}{\sqrt{hs}} + M \right) [V_{B_{b-1}}; V_{B_b}],
        \qquad B_b = \{bw, \ldots, bw + w - 1\}

    with :math:`M` from :func:`band_block_mask`. The sequence is zero-padded to :math:`n w`
    positions (and one empty block in front of the keys); blocks of keys are strided views
    (``unfold``), not copies. Scores and weights take :math:`n \cdot w \cdot 2w \approx 2Tw`
    numbers per head instead of :math:`T^2`. It equals
    :func:`~dlscratch.layers.attention.attend.attend_written` with the same window (the tests
    check values and gradients). Queries after cached positions (``offset > 0``, a decoding
    step: a few queries over at most :math:`w - 1 + T` keys) go to
    :func:`~dlscratch.layers.attention.attend.attend_written`'s masked product, already small.
    No extra mask or score bias. Returns no weights.

    Shape:
        - q: :math:`(B, nh, T, hs)`; k, v: :math:`(B, nh, S, hs)`; output: :math:`(B, nh, T, hs)`
    """
    if not causal or window is None:
        raise ValueError(f"banded attention needs a causal sliding window, got causal={causal}, window={window!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got window={window!r}")
    if mask is not None or bias is not None:
        raise ValueError("banded attention takes no extra mask or score bias; use attend='written' for those")
    B, nh, T, hs = q.shape
    S = k.size(2)
    if offset != 0 or S != T:  # a decoding step after a cache: few queries, the masked product is small
        allowed = offset_causal_mask(T, S, offset, window, q.device)  # (T, S)
        out, _ = scaled_dot_product_attention(q, k, v, mask=allowed, dropout_p=dropout_p)
        return out, None
    w = window
    n = -(-T // w)  # blocks, ceil(T / w)
    pad = n * w - T
    qb = F.pad(q, (0, 0, 0, pad)).view(B, nh, n, w, hs)  # (B, nh, n, w, hs)
    kb = F.pad(k, (0, 0, w, pad)).unfold(2, 2 * w, w)  # (B, nh, (n+1) w, hs) -> (B, nh, n, hs, 2w), a view
    vb = F.pad(v, (0, 0, w, pad)).unfold(2, 2 * w, w)  # (B, nh, n, hs, 2w)
    out, _ = scaled_dot_product_attention(
        qb, kb.transpose(-2, -1), vb.transpose(-2, -1), mask=band_block_mask(n, w, q.device), dropout_p=dropout_p
    )  # (B, nh, n, w, hs): block b's queries over blocks b-1 and b
    return out.reshape(B, nh, n * w, hs)[:, :, :T], None  # (B, nh, T, hs)
