r"""A layer's key/value cache for autoregressive decoding, and the causal masks it needs.

When a decoder generates one token at a time, the keys and values of the earlier positions do
not change (causality: position :math:`j` never sees later tokens). Keeping them in a cache,
each step only computes the new token's query, key and value and attends to the cache:
:math:`O(t)` work at step :math:`t` instead of a full :math:`O(t^2)` recomputation.

Each self-attention layer owns its :class:`KVCache` (``attn.cache``): one preallocated pair of
buffers, filled from the left, with one :meth:`KVCache.append` that writes and advances. A layer
with a sliding window of :math:`w` keys needs only the last :math:`w` positions:
:class:`RollingKVCache` (Mistral's rolling buffer, chapter 19) holds just those, so its memory
stops growing with the sequence. :func:`kv_cache_bytes` is the closed form of both sizes.
:func:`~dlscratch.layers.attention.modules.start_kv_caches` and
:func:`~dlscratch.layers.attention.modules.stop_kv_caches` give every causal self-attention layer
of a model one or take them away. Introduced in chapter 17, *GPT*.

Symbols: B batch, nkv key/value heads, hs head size, T new tokens, S = cached + new tokens.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["offset_causal_mask", "KVCache", "RollingKVCache", "kv_cache_bytes"]


@functools.lru_cache(maxsize=256)
def _band(T: int, S: int, offset: int, window: int | None, device: torch.device) -> torch.Tensor:
    allowed = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=offset)  # j <= offset + i
    if window is not None:
        allowed &= ~torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=offset - window)  # j > offset + i - w
    return allowed


def offset_causal_mask(
    T: int, S: int, offset: int | None = None, window: int | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""Causal mask for :math:`T` queries at positions ``offset ... offset + T - 1`` over :math:`S` keys.

    .. math::

        M_{ij} = [\, j \le o + i \,] \wedge [\, j > o + i - w \,]

    Query :math:`i` sits at absolute position :math:`o + i` and may attend to every key up to
    it; with a sliding ``window`` :math:`w` (Mistral, chapter 19) only to the last :math:`w` of
    them, itself included. The offset :math:`o` defaults to :math:`S - T`: the queries are the
    *last* :math:`T` of :math:`S` positions, as under a KV cache. With :math:`o = 0` and no
    window this is chapter 11's ``causal_mask``; with :math:`T = 1` and the default offset it is
    all ``True``. Built once per ``(T, S, offset, window, device)`` and cached: treat the
    result as read-only.

    Shape:
        - output: :math:`(T, S)` bool, ``True`` = may attend
    """
    if T < 1 or S < 1 or (offset is None and T > S):
        raise ValueError(f"need T, S >= 1 (and T <= S for the default offset S - T), got T={T}, S={S}, offset={offset}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ValueError(f"window must be a positive integer or None, got window={window!r}")
    offset = S - T if offset is None else offset
    return _band(T, S, offset, window, torch.device(device if device is not None else "cpu"))


class _KVBuffers:
    r"""The two zero-filled buffers of a per-layer cache, with the checks, ``reset`` and ``nbytes`` both caches share."""

    def __init__(self, sizes: dict[str, int], device: torch.device | str | None, dtype: torch.dtype | None) -> None:
        bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"{type(self).__name__} sizes must be positive integers, got {bad}")
        shape = tuple(sizes.values())  # (B, nkv, slots, hs)
        self.k = torch.zeros(shape, device=device, dtype=dtype)  # (B, nkv, slots, hs)
        self.v = torch.zeros(shape, device=device, dtype=dtype)  # (B, nkv, slots, hs)
        self.length = 0  # positions seen so far

    def _check_fits(self, k: torch.Tensor) -> None:
        B, nkv, _, hs = k.shape
        if (B, nkv, hs) != (self.k.size(0), self.k.size(1), self.k.size(3)):
            raise ValueError(
                f"keys of shape {tuple(k.shape)} do not fit a cache of (B, nkv, hs) = "
                f"{(self.k.size(0), self.k.size(1), self.k.size(3))}"
            )

    def reset(self) -> None:
        r"""Forget the cached positions (the buffers are reused)."""
        self.length = 0

    def nbytes(self) -> int:
        r"""Memory held by the two buffers, in bytes."""
        return self.k.nbytes + self.v.nbytes


class KVCache(_KVBuffers):
    r"""One attention layer's preallocated key and value buffers, filled left to right.

    :meth:`append` writes the :math:`T` new keys and values at positions
    ``length ... length + T - 1``, advances ``length`` and returns views of everything cached,
    new tokens included: update and advance happen in one place. Memory:
    :math:`2 \cdot B \cdot \text{max\_len} \cdot nkv \cdot hs` numbers per layer.

    Chapter 17, *GPT*.

    Args:
        batch_size: B.
        n_kv_head: nkv, the number of key/value heads (fewer than the query heads under GQA).
        max_len: the most positions the cache can hold.
        head_size: hs.
        device, dtype: of the buffers (those of the model).

    Shape:
        - k, v buffers: :math:`(B, nkv, \text{max\_len}, hs)`
        - append: k, v :math:`(B, nkv, T, hs)` in; :math:`(B, nkv, \text{length} + T, hs)` out
    """

    def __init__(
        self,
        batch_size: int,
        n_kv_head: int,
        max_len: int,
        head_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        sizes = {"batch_size": batch_size, "n_kv_head": n_kv_head, "max_len": max_len, "head_size": head_size}
        super().__init__(sizes, device, dtype)  # k, v: (B, nkv, max_len, hs); length: positions filled
        self.max_len = max_len

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Store the new keys and values after the cached ones, advance, and return all of them."""
        T = k.size(2)
        end = self.length + T
        if end > self.max_len:
            raise ValueError(f"KVCache holds {self.max_len} positions; {self.length} cached + {T} new = {end}")
        self._check_fits(k)
        self.k[:, :, self.length : end] = k  # positions length ... end - 1 <- (B, nkv, T, hs)
        self.v[:, :, self.length : end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]  # (B, nkv, S, hs), S = end



def kv_cache_bytes(
    n_layer: int, n_kv_head: int, head_size: int, seq_len: int, *, batch_size: int = 1,
    bytes_per_value: int = 2, window: int | None = None,
) -> int:
    r"""Bytes of the keys and values a decoder caches for ``batch_size`` sequences of ``seq_len`` tokens.

    .. math::

        \text{bytes} = 2 \cdot L \cdot n_{kv} \cdot hs \cdot \min(T, w) \cdot B \cdot \text{bytes per value}

    The 2 counts keys and values; every layer caches :math:`n_{kv}` heads of :math:`hs` numbers
    per position, for all :math:`T` positions, or only the last :math:`w` under a sliding window
    (a rolling buffer, :class:`RollingKVCache`). Multi-head attention has :math:`n_{kv} = n_h`,
    so grouped-query attention divides the cache by :math:`n_h / n_{kv}`. ``bytes_per_value`` is
    2 for fp16/bf16, 4 for fp32. Chapter 19.
    """
    sizes = {"n_layer": n_layer, "n_kv_head": n_kv_head, "head_size": head_size, "seq_len": seq_len,
             "batch_size": batch_size, "bytes_per_value": bytes_per_value}
    bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise ValueError(f"kv_cache_bytes needs positive integers, got {bad}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ValueError(f"window must be a positive integer or None, got window={window!r}")
    positions = seq_len if window is None else min(seq_len, window)
    return 2 * n_layer * n_kv_head * head_size * positions * batch_size * bytes_per_value


class RollingKVCache(_KVBuffers):
    r"""A sliding-window layer's cache: only the last ``window`` positions, in a ring of that many slots.

    With a window of :math:`w` keys, query :math:`t` reads positions :math:`t - w + 1 \ldots t`,
    so position :math:`p` is needed up to step :math:`p + w - 1` and never after. Mistral's
    *rolling buffer* keeps :math:`w` slots and writes position :math:`p` to slot :math:`p \bmod w`,
    overwriting the position that just fell out of every future window
    (Jiang et al., 2023). Memory: :math:`2 \cdot B \cdot w \cdot nkv \cdot hs` numbers per layer,
    however long the sequence.

    :meth:`append` returns the last :math:`\min(\text{length}, w - 1)` cached keys and values
    in order of position, followed by the :math:`T` new ones: everything the new queries may
    read. The layer's mask then treats the returned keys as the last :math:`S` positions
    (offset :math:`S - T`). ``length`` counts every position seen, so position embeddings
    continue. Chapter 19, *MQA, GQA and sliding-window attention*.

    Args:
        batch_size: B.
        n_kv_head: nkv.
        window: w, the keys each query sees (itself included).
        head_size: hs.
        device, dtype: of the buffers.

    Shape:
        - k, v buffers: :math:`(B, nkv, w, hs)`
        - append: k, v :math:`(B, nkv, T, hs)` in; :math:`(B, nkv, \min(\text{length}, w - 1) + T, hs)` out
    """

    def __init__(
        self,
        batch_size: int,
        n_kv_head: int,
        window: int,
        head_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        sizes = {"batch_size": batch_size, "n_kv_head": n_kv_head, "window": window, "head_size": head_size}
        super().__init__(sizes, device, dtype)  # k, v: (B, nkv, w, hs), slot p % w holds position p
        self.window = window

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Return the cached window then the new keys and values; keep the last ``window`` of them."""
        T = k.size(2)
        self._check_fits(k)
        w, n = self.window, self.length
        m = min(n, w - 1)  # cached positions n - m ... n - 1 are still in the new queries' windows
        slots = torch.arange(n - m, n, device=self.k.device) % w  # (m,) their slots, in order of position
        k_all = torch.cat([self.k[:, :, slots], k], dim=2)  # (B, nkv, m + T, hs)
        v_all = torch.cat([self.v[:, :, slots], v], dim=2)
        keep = min(T, w)  # only the last w new positions can be needed later
        new_slots = torch.arange(n + T - keep, n + T, device=self.k.device) % w  # (keep,)
        self.k[:, :, new_slots] = k[:, :, T - keep :]
        self.v[:, :, new_slots] = v[:, :, T - keep :]
        self.length = n + T
        return k_all, v_all
