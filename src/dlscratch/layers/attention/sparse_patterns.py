r"""Sparse attention patterns as boolean masks: Longformer's window plus global tokens, the Sparse Transformer's.

Each function returns which keys each query may read (``True`` = may attend). Fed to
:func:`~dlscratch.layers.attention.flash.flash_attention` as ``mask``, the tiles a pattern leaves
empty are skipped, so the work follows the number of allowed entries rather than :math:`T^2`
(block-sparse attention); fed to ``F.scaled_dot_product_attention`` as ``attn_mask`` they give the
reference. The sliding window is chapter 19's
:func:`~dlscratch.layers.attention.kv_cache.offset_causal_mask` (computed band by band by
:func:`~dlscratch.layers.attention.banded.attend_banded`).

Chapter 24, *FlashAttention and efficient attention*. Symbols: T length, w window, l stride,
c summary positions per block.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .kv_cache import offset_causal_mask

__all__ = ["longformer_mask", "strided_pattern", "fixed_pattern", "pattern_density"]


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")


def longformer_mask(
    T: int, window: int, global_tokens: Sequence[int] = (), *, causal: bool = True, device: torch.device | str | None = None
) -> torch.Tensor:
    r"""Longformer's attention pattern: a sliding window, plus global tokens that read and are read by all.

    .. math::

        M_{ij} = \underbrace{[\, i - w < j \le i \,]}_{\text{window (causal)}}
            \;\vee\; [\, j \in G \,] \;\vee\; [\, i \in G \,]

    intersected with :math:`j \le i` when ``causal``. Without ``causal`` the window is
    symmetric, :math:`|i - j| \le \lfloor w/2 \rfloor` (Longformer's encoder; Beltagy et al., 2020).

    Shape:
        - output: :math:`(T, T)` bool
    """
    _check_positive(T=T, window=window)
    g = torch.as_tensor(list(global_tokens), dtype=torch.long)
    if g.numel() and (g.min() < 0 or g.max() >= T):
        raise ValueError(f"global tokens must lie in 0 ... T-1 = {T - 1}, got {sorted(set(g.tolist()))}")
    if causal:
        allowed = offset_causal_mask(T, T, 0, window, device).clone()  # (T, T) chapter 19's window
    else:
        pos = torch.arange(T, device=device)
        allowed = (pos[:, None] - pos[None, :]).abs() <= window // 2  # (T, T)
    is_global = torch.zeros(T, dtype=torch.bool, device=device)
    is_global[g.to(is_global.device)] = True
    allowed |= is_global[None, :] | is_global[:, None]  # global columns and rows
    if causal:
        allowed &= torch.ones(T, T, dtype=torch.bool, device=device).tril()
    return allowed


def strided_pattern(T: int, stride: int, device: torch.device | str | None = None) -> torch.Tensor:
    r"""The Sparse Transformer's *strided* pattern, one mask per head (Child et al., 2019).

    .. math::

        A^{(1)}_{ij} = [\, i - l < j \le i \,], \qquad
        A^{(2)}_{ij} = [\, j \le i \,] \wedge [\, (i - j) \bmod l = 0 \,]

    Head 1 reads the previous :math:`l` positions, head 2 every :math:`l`-th one before: two
    steps reach any earlier position, with :math:`O(T\sqrt{T})` entries for :math:`l \approx \sqrt{T}`.

    Shape:
        - output: :math:`(2, T, T)` bool, one mask per head
    """
    _check_positive(T=T, stride=stride)
    pos = torch.arange(T, device=device)
    diff = pos[:, None] - pos[None, :]  # (T, T) i - j
    return torch.stack([(diff >= 0) & (diff < stride), (diff >= 0) & (diff % stride == 0)])  # (2, T, T)


def fixed_pattern(T: int, stride: int, c: int = 1, device: torch.device | str | None = None) -> torch.Tensor:
    r"""The Sparse Transformer's *fixed* pattern, one mask per head (Child et al., 2019).

    .. math::

        A^{(1)}_{ij} = [\, j \le i \,] \wedge [\, \lfloor j/l \rfloor = \lfloor i/l \rfloor \,], \qquad
        A^{(2)}_{ij} = [\, j \le i \,] \wedge \left( [\, j \bmod l \ge l - c \,] \vee [\, j = i \,] \right)

    Head 1 reads its own block of :math:`l` positions, head 2 the last :math:`c` positions of
    every block (the "summary" cells that carry a block's content forward). Head 2 also reads
    the query's own position, so the first :math:`l - c` rows, before any summary cell, are not
    empty.

    Shape:
        - output: :math:`(2, T, T)` bool, one mask per head
    """
    _check_positive(T=T, stride=stride, c=c)
    if c > stride:
        raise ValueError(f"the summary width c must be at most the stride, got c={c} and stride={stride}")
    pos = torch.arange(T, device=device)
    causal = pos[None, :] <= pos[:, None]  # (T, T)
    same_block = (pos[:, None] // stride) == (pos[None, :] // stride)  # (T, T)
    summary = (pos % stride >= stride - c)[None, :] | torch.eye(T, dtype=torch.bool, device=device)  # (T, T)
    return torch.stack([causal & same_block, causal & summary])  # (2, T, T)


def pattern_density(mask: torch.Tensor, block: int | None = None) -> float:
    r"""The fraction of entries a pattern allows, or with ``block``, of :math:`block \times block` tiles with any.

    Shape:
        - mask: :math:`(\ldots, T, S)` bool
    """
    if block is None:
        return mask.float().mean().item()
    _check_positive(block=block)
    T, S = mask.shape[-2:]
    nt, ns = -(-T // block), -(-S // block)
    padded = torch.zeros(*mask.shape[:-2], nt * block, ns * block, dtype=torch.bool, device=mask.device)
    padded[..., :T, :S] = mask
    tiles = padded.view(*mask.shape[:-2], nt, block, ns, block).any(-1).any(-2)  # (..., nt, ns)
    return tiles.float().mean().item()
