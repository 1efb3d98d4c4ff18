r"""Reformer's LSH attention (Kitaev et al., 2020): hash, sort by bucket, attend within chunks.

Softmax attention is dominated by the keys closest to the query. Angular locality-sensitive
hashing puts close vectors in the same bucket with high probability: project on random
directions :math:`R` and take :math:`h(x) = \arg\max [x R;\, -x R]` (Andoni et al., 2015).
Reformer shares queries and keys (:math:`k = q / \|q\|`), sorts the positions by bucket, cuts the
sorted sequence into chunks of :math:`c` and lets each chunk attend to itself and the chunk
before, within its bucket: :math:`O(T c)` scores instead of :math:`T^2`. A position attends to
itself only when nothing else is allowed (with shared queries and keys its own score would
dominate).

Chapter 24, *FlashAttention and efficient attention*. Symbols: B batch, nh heads, T length,
hs head size, b buckets, c chunk length, n = T / c chunks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["random_rotations", "lsh_hash", "collision_probability", "lsh_mask", "lsh_attention"]


def random_rotations(
    hs: int, n_buckets: int, *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    r"""A random Gaussian projection :math:`R \in \mathbb R^{hs \times b/2}` for :func:`lsh_hash`.

    Shape:
        - output: :math:`(hs, b/2)`
    """
    if isinstance(n_buckets, bool) or not isinstance(n_buckets, int) or n_buckets < 2 or n_buckets % 2:
        raise ValueError(f"n_buckets must be an even integer >= 2, got n_buckets={n_buckets!r}")
    return torch.randn(hs, n_buckets // 2, generator=generator, dtype=dtype)


def lsh_hash(x: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    r"""Angular LSH: :math:`h(x) = \arg\max\,[x R;\; -x R]`, a bucket in :math:`0 \ldots b-1`.

    With :math:`b = 2` it is the side of one random hyperplane, and two vectors at angle
    :math:`\theta` collide with probability :math:`1 - \theta/\pi`.

    Shape:
        - x: :math:`(\ldots, hs)`; rotations: :math:`(hs, b/2)`; output: :math:`(\ldots)` long
    """
    proj = x @ rotations  # (..., hs) @ (hs, b/2) -> (..., b/2)
    return torch.cat([proj, -proj], dim=-1).argmax(-1)  # (...,)


def collision_probability(
    angles: torch.Tensor, n_buckets: int, *, d: int = 64, trials: int = 2000, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""The measured probability that two unit vectors at each angle share an LSH bucket.

    For each trial, one random projection hashes :math:`x = e_1` and
    :math:`y = \cos\theta\, e_1 + \sin\theta\, e_2`; the answer is the fraction of trials where
    :math:`h(x) = h(y)`. Random projections are rotation-invariant, so the two fixed vectors stand
    for any pair at that angle.

    Shape:
        - angles: :math:`(A,)` radians; output: :math:`(A,)`
    """
    rot = torch.stack([random_rotations(d, n_buckets, generator=generator, dtype=torch.float64) for _ in range(trials)])
    x = torch.zeros(len(angles), d, dtype=torch.float64)
    x[:, 0] = 1.0
    y = torch.zeros_like(x)
    y[:, 0], y[:, 1] = torch.cos(angles.double()), torch.sin(angles.double())
    hx = lsh_hash(x[:, None, None, :], rot)  # (A, trials, 1, d) @ (trials, d, b/2) -> (A, trials, 1)
    hy = lsh_hash(y[:, None, None, :], rot)
    return (hx == hy).double().mean((1, 2))  # (A,)


def _self_rule(allowed: torch.Tensor, is_self: torch.Tensor) -> torch.Tensor:
    others = allowed & ~is_self
    return others | (is_self & ~others.any(-1, keepdim=True))  # itself only when nothing else is allowed


def lsh_mask(buckets: torch.Tensor, chunk: int, *, causal: bool = True) -> torch.Tensor:
    r"""The full :math:`T \times T` mask that chunked LSH attention applies, built from ranks (for checks).

    .. math::

        M_{ij} = [\, h_i = h_j \,] \wedge [\, \lfloor r_j / c \rfloor \in \{\lfloor r_i / c \rfloor - 1, \lfloor r_i / c \rfloor\} \,]
            \wedge [\, j \le i \,]

    with :math:`r_i` the rank of position :math:`i` after sorting by (bucket, position), and the
    self rule: :math:`M_{ii}` only when row :math:`i` allows nothing else.

    Shape:
        - buckets: :math:`(B, nh, T)`; output: :math:`(B, nh, T, T)` bool
    """
    T = buckets.size(-1)
    pos = torch.arange(T, device=buckets.device)
    order = torch.argsort(buckets * T + pos, dim=-1)  # (B, nh, T) sorted position -> original position
    rank = torch.argsort(order, dim=-1)  # (B, nh, T) original position -> rank
    ci = (rank // chunk)[..., :, None]  # (B, nh, T, 1)
    cj = (rank // chunk)[..., None, :]  # (B, nh, 1, T)
    allowed = (buckets[..., :, None] == buckets[..., None, :]) & ((cj == ci) | (cj == ci - 1))  # (B, nh, T, T)
    if causal:
        allowed &= pos[None, :] <= pos[:, None]
    return _self_rule(allowed, torch.eye(T, dtype=torch.bool, device=buckets.device))


def lsh_attention(
    qk: torch.Tensor, v: torch.Tensor, rotations: torch.Tensor, *, chunk: int, causal: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Shared-QK attention within LSH buckets, computed chunk by chunk over the sorted sequence.

    .. math::

        o_i = \sum_j \operatorname{softmax}_j\!\left(\frac{q_i \cdot k_j}{\sqrt{hs}} + M_{ij}\right) v_j,
        \qquad k_j = \frac{q_j}{\|q_j\|}

    with :math:`M` the mask of :func:`lsh_mask`, never formed: each chunk of :math:`c` sorted
    queries scores :math:`2c` keys (its chunk and the one before). Returns the output and the buckets.

    Shape:
        - qk: :math:`(B, nh, T, hs)`; v: :math:`(B, nh, T, hs_v)`; rotations: :math:`(hs, b/2)`
        - output: :math:`(B, nh, T, hs_v)` and buckets :math:`(B, nh, T)`
    """
    B, nh, T, hs = qk.shape
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1 or T % chunk:
        raise ValueError(f"chunk must be a positive integer dividing T, got chunk={chunk!r} and T={T}")
    n = T // chunk
    buckets = lsh_hash(qk, rotations)  # (B, nh, T)
    pos = torch.arange(T, device=qk.device)
    order = torch.argsort(buckets * T + pos, dim=-1)  # (B, nh, T) sort by bucket, then position
    sq = qk.gather(2, order[..., None].expand(-1, -1, -1, hs)).view(B, nh, n, chunk, hs)  # (B, nh, n, c, hs)
    sv = v.gather(2, order[..., None].expand(-1, -1, -1, v.size(-1))).view(B, nh, n, chunk, -1)  # (B, nh, n, c, hs_v)
    sb, sp = buckets.gather(2, order).view(B, nh, n, chunk), order.view(B, nh, n, chunk)  # (B, nh, n, c)

    def with_previous(x: torch.Tensor) -> torch.Tensor:  # chunk b sees chunks b-1 and b
        return torch.cat([x.roll(1, dims=2), x], dim=3)  # (B, nh, n, 2c, ...)

    keys = with_previous(F.normalize(sq, dim=-1))  # (B, nh, n, 2c, hs)
    kb, kp = with_previous(sb), with_previous(sp)  # (B, nh, n, 2c)
    allowed = sb[..., :, None] == kb[..., None, :]  # (B, nh, n, c, 2c)
    allowed[:, :, 0, :, :chunk] = False  # chunk 0 has no chunk before it (roll wrapped the last one in)
    if causal:
        allowed &= kp[..., None, :] <= sp[..., :, None]
    allowed = _self_rule(allowed, kp[..., None, :] == sp[..., :, None])
    scores = (sq @ keys.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, n, c, hs) @ (B, nh, n, hs, 2c)
    p = scores.masked_fill(~allowed, -math.inf).softmax(-1)  # (B, nh, n, c, 2c)
    out_sorted = (p @ with_previous(sv)).view(B, nh, T, -1)  # (B, nh, n, c, 2c) @ (B, nh, n, 2c, hs_v)
    out = torch.empty_like(out_sorted).scatter_(2, order[..., None].expand_as(out_sorted), out_sorted)  # unsort
    return out, buckets
