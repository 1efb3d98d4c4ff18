r"""FlashAttention on the CPU, in PyTorch: online softmax, a tiled forward pass, a recomputing backward.

Attention's softmax needs a row's maximum and sum before it can weigh a single value, so the
plain algorithm writes the whole :math:`T \times S` score matrix to memory. The *online softmax*
(Milakov and Gimelshein, 2018) keeps a running maximum :math:`m` and a running sum :math:`\ell`
and rescales what it has accumulated whenever the maximum grows; FlashAttention (Dao et al.,
2022) uses it to compute attention tile by tile, blocks of queries against blocks of keys and
values, never holding more than one :math:`B_q \times B_k` tile of scores. Its backward pass
saves only the output and the log-sum-exp of each row and recomputes the scores tile by tile
(FlashAttention-2's form, Dao, 2023). Tiles that a mask switches off entirely are skipped:
under a causal mask the upper triangle of tiles, under a sparse pattern every empty tile
(block-sparse FlashAttention).

Chapter 24, *FlashAttention and efficient attention*. Symbols: B batch, nh heads, T queries,
S keys, hs head size, :math:`B_q`, :math:`B_k` the tile sizes.
"""

from __future__ import annotations

import math

import torch

__all__ = ["online_softmax", "check_tiles", "flash_forward", "flash_backward", "FlashAttention", "flash_attention"]


def online_softmax(x: torch.Tensor, block: int) -> torch.Tensor:
    r"""Softmax over the last dimension, reading it ``block`` entries at a time (one pass for the statistics).

    .. math::

        m_j = \max(m_{j-1}, \max x_{(j)}), \qquad
        \ell_j = e^{m_{j-1} - m_j}\,\ell_{j-1} + \sum e^{x_{(j)} - m_j},
        \qquad \operatorname{softmax}(x) = e^{x - m_n} / \ell_n

    with :math:`m_0 = -\infty`, :math:`\ell_0 = 0` and :math:`x_{(j)}` the :math:`j`-th block.

    Shape:
        - x: :math:`(\ldots, N)`; output: the same
    """
    check_tiles(block, block)
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype, device=x.device)  # (...,) running max
    ell = torch.zeros_like(m)  # (...,) running sum of exp(x - m)
    for j0 in range(0, x.size(-1), block):
        xj = x[..., j0:j0 + block]  # (..., block)
        m_new = torch.maximum(m, xj.amax(-1))
        ell = torch.exp(m - m_new) * ell + torch.exp(xj - m_new[..., None]).sum(-1)  # rescale, then add
        m = m_new
    return torch.exp(x - m[..., None]) / ell[..., None]


def check_tiles(block_q: int, block_k: int) -> None:
    r"""Tile sizes must be positive integers; the error names both."""
    for b in (block_q, block_k):
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"tile sizes must be positive integers, got block_q={block_q!r} and block_k={block_k!r}")


def _tile_mask(
    mask: torch.Tensor | None, causal: bool, i0: int, i1: int, j0: int, j1: int, device: torch.device
) -> torch.Tensor | None | bool:
    r"""The allowed entries of tile (queries i0:i1, keys j0:j1); ``False`` when none is, ``None`` when all are."""
    if causal and j0 > i1 - 1:  # every key after every query: the tile is above the diagonal
        return False
    allowed = None
    if mask is not None:
        allowed = mask[..., i0:i1, j0:j1]  # (..., bq, bk)
        if not allowed.any():
            return False
    if causal and j1 - 1 > i0:  # the tile crosses the diagonal
        tri = torch.arange(i0, i1, device=device)[:, None] >= torch.arange(j0, j1, device=device)[None, :]  # (bq, bk)
        allowed = tri if allowed is None else allowed & tri
    return allowed


def flash_forward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool, mask: torch.Tensor | None, scale: float,
    block_q: int, block_k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The tiled forward pass: for each block of queries, the online softmax over blocks of keys and values.

    .. math::

        S_{ij} = s\, Q_i K_j^\top,\quad m_i' = \max(m_i, \operatorname{rowmax} S_{ij}),\quad
        P_{ij} = e^{S_{ij} - m_i'},\quad
        \ell_i \leftarrow e^{m_i - m_i'} \ell_i + \operatorname{rowsum} P_{ij},\quad
        A_i \leftarrow e^{m_i - m_i'} A_i + P_{ij} V_j

    and at the end :math:`O_i = A_i / \ell_i`, :math:`L_i = m_i + \log \ell_i` (the log-sum-exp
    the backward pass needs). Fully masked tiles are skipped.

    Shape:
        - q: :math:`(B, nh, T, hs)`; k: :math:`(B, nh, S, hs)`; v: :math:`(B, nh, S, hs_v)`;
          mask: bool, broadcastable to :math:`(B, nh, T, S)`, ``True`` = may attend
        - output: :math:`O` :math:`(B, nh, T, hs_v)` and :math:`L` :math:`(B, nh, T)`
    """
    B, nh, T, hs = q.shape
    S = k.size(2)
    o = q.new_empty(B, nh, T, v.size(-1))  # (B, nh, T, hs_v)
    lse = q.new_empty(B, nh, T)  # (B, nh, T)
    for i0 in range(0, T, block_q):
        i1 = min(i0 + block_q, T)
        qi = q[:, :, i0:i1] * scale  # (B, nh, bq, hs), the scale folded into the queries
        m = q.new_full((B, nh, i1 - i0), -math.inf)  # (B, nh, bq) running max
        ell = q.new_zeros(B, nh, i1 - i0)  # (B, nh, bq) running sum
        acc = q.new_zeros(B, nh, i1 - i0, v.size(-1))  # (B, nh, bq, hs_v) unnormalised output
        for j0 in range(0, S, block_k):
            j1 = min(j0 + block_k, S)
            allowed = _tile_mask(mask, causal, i0, i1, j0, j1, q.device)
            if allowed is False:
                continue
            s = qi @ k[:, :, j0:j1].transpose(-2, -1)  # (B, nh, bq, hs) @ (B, nh, hs, bk) -> (B, nh, bq, bk)
            if allowed is not None:
                s = s.masked_fill(~allowed, -math.inf)
            m_new = torch.maximum(m, s.amax(-1))  # (B, nh, bq)
            m_safe = m_new.masked_fill(m_new == -math.inf, 0.0)  # a row with nothing allowed yet: shift by 0
            p = torch.exp(s - m_safe[..., None])  # (B, nh, bq, bk)
            alpha = torch.exp(m - m_safe)  # (B, nh, bq) rescales what was accumulated
            ell = alpha * ell + p.sum(-1)
            acc = alpha[..., None] * acc + p @ v[:, :, j0:j1]  # (B, nh, bq, bk) @ (B, nh, bk, hs_v)
            m = m_new
        o[:, :, i0:i1] = acc / ell[..., None]  # a row with no allowed key: 0/0 = nan, as chapter 11's attention
        lse[:, :, i0:i1] = m + torch.log(ell)
    return o, lse


def flash_backward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor, do: torch.Tensor, *,
    causal: bool, mask: torch.Tensor | None, scale: float, block_q: int, block_k: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The backward pass, recomputing each tile's probabilities from :math:`Q`, :math:`K` and the saved log-sum-exp.

    .. math::

        P_{ij} = e^{s Q_i K_j^\top - L_i},\quad dV_j \mathrel{+}= P_{ij}^\top dO_i,\quad
        dP_{ij} = dO_i V_j^\top,\quad dS_{ij} = P_{ij} \circ (dP_{ij} - D_i),\\
        dQ_i \mathrel{+}= s\, dS_{ij} K_j,\quad dK_j \mathrel{+}= s\, dS_{ij}^\top Q_i,
        \qquad D = \operatorname{rowsum}(dO \circ O)

    (:math:`D_i = \sum_j P_{ij} dP_{ij}`, the softmax's Jacobian in one number per row).

    Shape:
        - as :func:`flash_forward`; do like o; output: dq, dk, dv like q, k, v
    """
    T, S = q.size(2), k.size(2)
    D = (do * o).sum(-1)  # (B, nh, T)
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    for j0 in range(0, S, block_k):  # outer loop over keys: dK_j and dV_j stay in the tile
        j1 = min(j0 + block_k, S)
        kj, vj = k[:, :, j0:j1], v[:, :, j0:j1]  # (B, nh, bk, hs), (B, nh, bk, hs_v)
        dkj, dvj = torch.zeros_like(kj), torch.zeros_like(vj)
        for i0 in range(0, T, block_q):
            i1 = min(i0 + block_q, T)
            allowed = _tile_mask(mask, causal, i0, i1, j0, j1, q.device)
            if allowed is False:
                continue
            qi, doi = q[:, :, i0:i1], do[:, :, i0:i1]  # (B, nh, bq, hs), (B, nh, bq, hs_v)
            s = (qi @ kj.transpose(-2, -1)) * scale  # (B, nh, bq, bk)
            p = torch.exp(s - lse[:, :, i0:i1, None])  # (B, nh, bq, bk) recomputed probabilities
            if allowed is not None:
                p = p.masked_fill(~allowed, 0.0)
            dvj += p.transpose(-2, -1) @ doi  # (B, nh, bk, bq) @ (B, nh, bq, hs_v)
            dp = doi @ vj.transpose(-2, -1)  # (B, nh, bq, hs_v) @ (B, nh, hs_v, bk) -> (B, nh, bq, bk)
            ds = p * (dp - D[:, :, i0:i1, None])  # (B, nh, bq, bk)
            dq[:, :, i0:i1] += (ds @ kj) * scale  # (B, nh, bq, bk) @ (B, nh, bk, hs)
            dkj += (ds.transpose(-2, -1) @ qi) * scale  # (B, nh, bk, bq) @ (B, nh, bq, hs)
        dk[:, :, j0:j1], dv[:, :, j0:j1] = dkj, dvj
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    r"""Tiled attention as an autograd function: saves :math:`Q, K, V, O, L`, never the :math:`T \times S` scores.

    Forward by :func:`flash_forward`, backward by :func:`flash_backward`. Call it through
    :func:`flash_attention`.
    """

    @staticmethod
    def forward(ctx, q, k, v, causal, mask, scale, block_q, block_k):  # noqa: ANN001, ANN205 - autograd's signature
        r"""The output :math:`O` of :func:`flash_forward`; keeps :math:`Q, K, V, O` and the log-sum-exp :math:`L` for the backward pass."""
        o, lse = flash_forward(q, k, v, causal=causal, mask=mask, scale=scale, block_q=block_q, block_k=block_k)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.mask, ctx.opts = mask, {"causal": causal, "scale": scale, "block_q": block_q, "block_k": block_k}
        return o

    @staticmethod
    def backward(ctx, do):  # noqa: ANN001, ANN205
        r""":math:`dQ, dK, dV` by :func:`flash_backward`, recomputing the scores tile by tile; no gradient for the options."""
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = flash_backward(q, k, v, o, lse, do.contiguous(), mask=ctx.mask, **ctx.opts)
        return dq, dk, dv, None, None, None, None, None


def flash_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False, mask: torch.Tensor | None = None,
    scale: float | None = None, block_q: int = 64, block_k: int = 64,
) -> torch.Tensor:
    r"""Exact attention computed tile by tile: ``F.scaled_dot_product_attention``'s result, in :math:`O(T)` memory.

    .. math::

        O = \operatorname{softmax}\!\left(s\, Q K^\top + M\right) V, \qquad s = 1/\sqrt{hs}

    ``causal`` is the top-left-aligned mask :math:`j \le i` (as ``is_causal`` in PyTorch);
    ``mask`` (bool, ``True`` = may attend) is a further pattern, whose all-``False`` tiles are
    skipped (block-sparse attention). Memory beyond the inputs: the output, one
    :math:`B_q \times B_k` tile of scores and :math:`O(T)` statistics.

    Shape:
        - q: :math:`(B, nh, T, hs)`; k: :math:`(B, nh, S, hs)`; v: :math:`(B, nh, S, hs_v)`;
          mask: broadcastable to :math:`(B, nh, T, S)`
        - output: :math:`(B, nh, T, hs_v)`
    """
    check_tiles(block_q, block_k)
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be (B, nh, T, hs), got ranks {q.dim()}, {k.dim()}, {v.dim()}")
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}")
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    return FlashAttention.apply(q, k, v, causal, mask, scale, block_q, block_k)
