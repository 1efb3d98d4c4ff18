r"""A key/value cache for autoregressive decoding, and the causal mask it needs.

When a decoder generates one token at a time, the keys and values of the earlier positions do
not change (causality: position :math:`j` never sees later tokens). Keeping them in a cache,
each step only computes the new token's query, key and value and attends to the cache:
:math:`O(t)` work at step :math:`t` instead of a full :math:`O(t^2)` recomputation.

:class:`KVCache` preallocates, for every layer, buffers of the maximum length and fills them
from the left. Introduced in chapter 17, *GPT*.

Symbols: L layers, B batch, nh heads, hs head size, T new tokens, S = cached + new tokens.
"""

from __future__ import annotations

import torch

__all__ = ["KVCache", "offset_causal_mask"]


def offset_causal_mask(T: int, S: int, device: torch.device | str | None = None) -> torch.Tensor:
    r"""Causal mask for :math:`T` queries that are the *last* :math:`T` of :math:`S` positions.

    .. math::

        M_{ij} = [\, j \le (S - T) + i \,]

    Query :math:`i` sits at absolute position :math:`S - T + i` and may attend to every key up
    to it. With :math:`S = T` this is chapter 11's ``causal_mask``; with :math:`T = 1` it is all
    ``True`` (the newest token sees the whole cache).

    Shape:
        - output: :math:`(T, S)` bool, ``True`` = may attend
    """
    if not 1 <= T <= S:
        raise ValueError(f"need 1 <= T <= S for a causal mask over a cache, got T={T}, S={S}")
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)  # (T, S)


class KVCache:
    r"""Preallocated per-layer key and value buffers, filled left to right.

    ``update(layer, k, v)`` writes the :math:`T` new keys and values of ``layer`` at positions
    ``length ... length + T - 1`` and returns views of everything cached so far, new tokens
    included. Once every layer has been updated, the model calls :meth:`advance` so the next
    call writes after them. Memory: :math:`2 \cdot L \cdot B \cdot \text{max\_len} \cdot nh
    \cdot hs` numbers.

    Chapter 17, *GPT*.

    Args:
        n_layer: L, one pair of buffers per layer.
        batch_size: B.
        n_head: nh (the number of key/value heads).
        max_len: the most positions the cache can hold.
        head_size: hs.
        device, dtype: of the buffers (those of the model).

    Shape:
        - k, v buffers: :math:`(L, B, nh, \text{max\_len}, hs)`
        - update: k, v :math:`(B, nh, T, hs)` in; :math:`(B, nh, \text{length} + T, hs)` out
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_head: int,
        max_len: int,
        head_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        sizes = {"n_layer": n_layer, "batch_size": batch_size, "n_head": n_head, "max_len": max_len, "head_size": head_size}
        bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"KVCache sizes must be positive integers, got {bad}")
        shape = (n_layer, batch_size, n_head, max_len, head_size)
        self.k = torch.zeros(shape, device=device, dtype=dtype)  # (L, B, nh, max_len, hs)
        self.v = torch.zeros(shape, device=device, dtype=dtype)  # (L, B, nh, max_len, hs)
        self._k = [self.k[i] for i in range(n_layer)]  # L views of shape (B, nh, max_len, hs)
        self._v = [self.v[i] for i in range(n_layer)]
        self.max_len = max_len
        self.length = 0  # positions filled in every layer

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Store the new keys/values of ``layer`` after the cached ones; return all of them."""
        B, nh, T, hs = k.shape
        end = self.length + T
        if end > self.max_len:
            raise ValueError(f"KVCache holds {self.max_len} positions; {self.length} cached + {T} new = {end}")
        if (B, nh, hs) != (self.k.size(1), self.k.size(2), self.k.size(4)):
            raise ValueError(
                f"keys of shape {tuple(k.shape)} do not fit a cache of (B, nh, hs) = "
                f"{(self.k.size(1), self.k.size(2), self.k.size(4))}"
            )
        k_buf, v_buf = self._k[layer], self._v[layer]  # (B, nh, max_len, hs), views of the buffers
        k_buf.narrow(2, self.length, T).copy_(k)  # positions length ... end - 1 <- (B, nh, T, hs)
        v_buf.narrow(2, self.length, T).copy_(v)
        return k_buf.narrow(2, 0, end), v_buf.narrow(2, 0, end)  # (B, nh, S, hs), S = end

    def advance(self, T: int) -> None:
        r"""Mark :math:`T` more positions as filled (after every layer has stored them)."""
        if self.length + T > self.max_len:
            raise ValueError(f"KVCache holds {self.max_len} positions, cannot advance {self.length} by {T}")
        self.length += T

    def reset(self) -> None:
        r"""Forget the cached positions (the buffers are reused)."""
        self.length = 0

    def nbytes(self) -> int:
        r"""Memory held by the two buffers, in bytes."""
        return self.k.nbytes + self.v.nbytes
