r"""Linear attention (Katharopoulos et al., 2020): a kernel feature map instead of the softmax.

Replacing :math:`\exp(q \cdot k)` by :math:`\phi(q) \cdot \phi(k)` lets the products regroup:

.. math::

    o_i = \frac{\phi(q_i)^\top \sum_{j \le i} \phi(k_j) v_j^\top}{\phi(q_i)^\top \sum_{j \le i} \phi(k_j)}
        = \frac{\phi(q_i)^\top S_i}{\phi(q_i)^\top z_i},

so the :math:`T \times T` matrix never forms: :math:`O(T\,hs^2)` work instead of
:math:`O(T^2 hs)`. Causally, :math:`S_i` and :math:`z_i` are running sums: the layer is an RNN
whose state has a fixed size, and generating a token costs the same at every step
(:func:`linear_attention_step`). The parallel form (:func:`linear_attention`) computes the same
thing for a whole sequence, chunk by chunk. The feature map is :math:`\phi(x) = \operatorname{elu}(x) + 1`;
any positive map works (Performer's random features,
:mod:`~dlscratch.layers.attention.performer`).

Chapter 24, *FlashAttention and efficient attention*. Symbols: B batch, nh heads, T length,
hs head size, r feature size, c chunk length, n chunks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["elu_feature_map", "linear_attention", "linear_attention_step"]


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\phi(x) = \operatorname{elu}(x) + 1`, positive everywhere (Katharopoulos et al., 2020).

    Shape:
        - x: any; output: the same
    """
    return F.elu(x) + 1.0


def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True, chunk: int = 64, eps: float = 1e-6,
    feature_map: Callable[[torch.Tensor], torch.Tensor] | None = elu_feature_map,
) -> torch.Tensor:
    r"""Linear attention over whole sequences; causal by chunks (``chunk`` queries at a time).

    Non-causal, :math:`O = \phi(Q)\,(\phi(K)^\top V) / (\phi(Q)\,\phi(K)^\top \mathbf 1)`.
    Causal, the sequence is cut into :math:`n` chunks of :math:`c`; chunk :math:`b` gets the state
    of the chunks before it plus a masked :math:`c \times c` product inside it:

    .. math::

        \text{num}_b = \phi(Q_b) S_{<b} + \operatorname{tril}(\phi(Q_b)\phi(K_b)^\top) V_b,\qquad
        S_{<b} = \sum_{b' < b} \phi(K_{b'})^\top V_{b'}

    and the same with :math:`V` replaced by ones for the denominator. ``feature_map=None`` takes
    ``q`` and ``k`` as already mapped (Performer).

    Shape:
        - q, k: :math:`(B, nh, T, hs)`; v: :math:`(B, nh, T, hs_v)`; output: :math:`(B, nh, T, hs_v)`
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got chunk={chunk!r}")
    if feature_map is not None:
        q, k = feature_map(q), feature_map(k)
    if not causal:
        kv = k.transpose(-2, -1) @ v  # (B, nh, r, T) @ (B, nh, T, hs_v) -> (B, nh, r, hs_v)
        z = k.sum(2)  # (B, nh, r)
        return (q @ kv) / ((q @ z[..., None]) + eps)  # (B, nh, T, hs_v)
    B, nh, T, r = q.shape
    n = -(-T // chunk)
    pad = n * chunk - T  # padding at the end: zero keys add nothing; queries of ones (no 0/0), dropped
    qc = F.pad(q, (0, 0, 0, pad), value=1.0).view(B, nh, n, chunk, r)  # (B, nh, n, c, r)
    kc = F.pad(k, (0, 0, 0, pad)).view(B, nh, n, chunk, r)  # (B, nh, n, c, r)
    vc = F.pad(v, (0, 0, 0, pad)).view(B, nh, n, chunk, v.size(-1))  # (B, nh, n, c, hs_v)
    kv = kc.transpose(-2, -1) @ vc  # (B, nh, n, r, c) @ (B, nh, n, c, hs_v) -> (B, nh, n, r, hs_v)
    state = kv.cumsum(2) - kv  # (B, nh, n, r, hs_v) exclusive prefix sum: S_{<b}
    z = kc.sum(3)  # (B, nh, n, r)
    z_before = (z.cumsum(2) - z)[..., None]  # (B, nh, n, r, 1)
    a = (qc @ kc.transpose(-2, -1)).tril()  # (B, nh, n, c, r) @ (B, nh, n, r, c) -> (B, nh, n, c, c)
    num = qc @ state + a @ vc  # (B, nh, n, c, hs_v)
    den = qc @ z_before + a.sum(-1, keepdim=True)  # (B, nh, n, c, 1)
    return (num / (den + eps)).reshape(B, nh, n * chunk, -1)[:, :, :T]  # (B, nh, T, hs_v)


def linear_attention_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None, *,
    eps: float = 1e-6, feature_map: Callable[[torch.Tensor], torch.Tensor] | None = elu_feature_map,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    r"""One token of causal linear attention as an RNN: update the state, read it out.

    .. math::

        S_t = S_{t-1} + \phi(k_t) v_t^\top, \qquad z_t = z_{t-1} + \phi(k_t), \qquad
        o_t = \frac{\phi(q_t)^\top S_t}{\phi(q_t)^\top z_t}

    :math:`O(r \cdot hs_v)` work and memory per token, whatever :math:`t`. ``state`` is
    ``(S, z)``; ``None`` starts from zeros.

    Shape:
        - q, k: :math:`(B, nh, r)` (one position); v: :math:`(B, nh, hs_v)`
        - output: :math:`o_t` :math:`(B, nh, hs_v)` and the state :math:`(B, nh, r, hs_v)`, :math:`(B, nh, r)`
    """
    if feature_map is not None:
        q, k = feature_map(q), feature_map(k)
    if state is None:
        state = (q.new_zeros(*k.shape, v.size(-1)), q.new_zeros(k.shape))
    S, z = state
    S = S + k[..., :, None] * v[..., None, :]  # (B, nh, r, hs_v) outer product
    z = z + k  # (B, nh, r)
    out = (q[..., None, :] @ S).squeeze(-2) / ((q * z).sum(-1, keepdim=True) + eps)  # (B, nh, 1, r) @ (B, nh, r, hs_v)
    return out, (S, z)
