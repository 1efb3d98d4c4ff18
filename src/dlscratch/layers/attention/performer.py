r"""Performer's FAVOR+: positive orthogonal random features for the softmax kernel (Choromanski et al., 2021).

The softmax kernel is an expectation over Gaussian vectors :math:`\omega \sim \mathcal N(0, I)`:

.. math::

    e^{x \cdot y} = \mathbb E_\omega\!\left[ e^{\omega \cdot x - \|x\|^2/2}\; e^{\omega \cdot y - \|y\|^2/2} \right],

so :math:`m` samples give features :math:`\phi(x) = e^{W x - \|x\|^2/2} / \sqrt m` whose dot
products estimate it without bias, and linear attention
(:func:`~dlscratch.layers.attention.linear.linear_attention`) with them approximates softmax
attention in :math:`O(T m\, hs)`. The features are positive (no cancellation: the estimate of
every weight is positive), and drawing the rows of :math:`W` orthogonal lowers the variance.

Chapter 24, *FlashAttention and efficient attention*. Symbols: B batch, nh heads, T length,
hs head size, m random features.
"""

from __future__ import annotations

import torch

from .linear import linear_attention

__all__ = ["random_projection", "favor_features", "performer_attention"]


def random_projection(
    m: int, d: int, *, orthogonal: bool = True, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    r"""``m`` random directions in :math:`\mathbb R^d`: i.i.d. Gaussian, or orthogonal in blocks of :math:`d`.

    Orthogonal: each block of :math:`d` rows is the :math:`Q` of a Gaussian matrix's QR
    decomposition, every row rescaled by the norm of an independent Gaussian vector, so each row
    has the Gaussian's distribution but rows of a block are exactly orthogonal.

    Shape:
        - output: :math:`(m, d)`
    """
    if isinstance(m, bool) or not isinstance(m, int) or m < 1 or not isinstance(d, int) or d < 1:
        raise ValueError(f"need positive integers m and d, got m={m!r} and d={d!r}")
    if not orthogonal:
        return torch.randn(m, d, generator=generator, dtype=dtype)
    g = torch.randn(-(-m // d), d, d, generator=generator, dtype=torch.float64)  # (blocks, d, d)
    qmat, r = torch.linalg.qr(g)  # (blocks, d, d) each
    qmat = qmat * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]  # uniformly random orthogonal matrices
    w = qmat.transpose(-2, -1).reshape(-1, d)[:m]  # (m, d): each block's rows orthonormal
    norms = torch.randn(m, d, generator=generator, dtype=torch.float64).norm(dim=1, keepdim=True)  # (m, 1) chi_d
    return (w * norms).to(dtype or torch.get_default_dtype())


def favor_features(x: torch.Tensor, w: torch.Tensor, *, is_query: bool) -> torch.Tensor:
    r"""Positive random features :math:`\phi(x) = e^{W x - \|x\|^2/2 - c} / \sqrt m`.

    :math:`c` keeps the exponent at most 0 for floating point: the row's maximum for queries
    (a per-query factor cancels in attention's ratio), one maximum over all keys of a head for
    keys (it must be the same for every key).

    Shape:
        - x: :math:`(B, nh, T, hs)`; w: :math:`(m, hs)`; output: :math:`(B, nh, T, m)`
    """
    proj = x @ w.T  # (B, nh, T, hs) @ (hs, m) -> (B, nh, T, m)
    logits = proj - (x * x).sum(-1, keepdim=True) / 2  # (B, nh, T, m)
    c = logits.amax(-1, keepdim=True) if is_query else logits.amax((-2, -1), keepdim=True)
    return torch.exp(logits - c.detach()) / w.size(0) ** 0.5


def performer_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor, *, causal: bool = False, chunk: int = 64,
) -> torch.Tensor:
    r"""Softmax attention approximated by FAVOR+ features and linear attention.

    .. math::

        \operatorname{softmax}\!\left(\frac{Q K^\top}{\sqrt{hs}}\right) V \approx
        \frac{\phi(Q')\,(\phi(K')^\top V)}{\phi(Q')\,\phi(K')^\top \mathbf 1}, \qquad
        Q' = Q / hs^{1/4},\; K' = K / hs^{1/4}

    Shape:
        - q, k: :math:`(B, nh, T, hs)`; v: :math:`(B, nh, T, hs_v)`; w: :math:`(m, hs)`;
          output: :math:`(B, nh, T, hs_v)`
    """
    s = q.size(-1) ** -0.25
    fq, fk = favor_features(q * s, w, is_query=True), favor_features(k * s, w, is_query=False)  # (B, nh, T, m)
    return linear_attention(fq, fk, v, causal=causal, chunk=chunk, eps=0.0, feature_map=None)
