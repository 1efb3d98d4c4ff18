r"""QK-norm: RMS-normalise every head's queries and keys before positions and scores.

.. math::

    \hat q_h = \gamma_q \odot \frac{q_h}{\operatorname{rms}(q_h)}, \qquad
    \hat k_h = \gamma_k \odot \frac{k_h}{\operatorname{rms}(k_h)}, \qquad
    \text{score}_{ij} = \frac{\langle R_i \hat q_{h,i},\, R_j \hat k_{h,j} \rangle}{\sqrt{hs}}

Each head's :math:`hs` channels are normalised on their own, with one gain vector of :math:`hs`
numbers shared by the heads (Qwen 3 and Gemma 3 do this; OLMo 2 normalises the whole projection
instead). A score is then bounded by :math:`\lVert\gamma_q\rVert\,\lVert\gamma_k\rVert / \sqrt{hs}`
times :math:`hs`, whatever the size of the weights: the logits of attention cannot blow up, which
lets the speedruns train with a larger learning rate (Dehghani et al., 2023). Chapter 21, *LLaMA*.

Symbols: B batch, T queries, S keys, nh query heads, nkv key/value heads, hs head size.
"""

from __future__ import annotations

import torch

from ..norms import make_norm
from .modules import MultiHeadAttention

__all__ = ["QKNormAttention"]


class QKNormAttention(MultiHeadAttention):
    r""":class:`~dlscratch.layers.attention.modules.MultiHeadAttention` with RMSNorm on each head's queries and keys.

    The norms act in :meth:`attend_heads`, before the position hook (RoPE) and the cache, so the
    cache holds normalised, rotated keys and every path that calls ``attend_heads`` (the module's
    forward and :class:`~dlscratch.models.fused_decoder.FusedDecoder`) gets them. Parameters:
    those of the base layer plus :math:`2\,hs` gains (``q_norm.weight``, ``k_norm.weight``).

    Args:
        embed_dim, num_heads, num_kv_heads: as :class:`~dlscratch.layers.attention.modules.MultiHeadAttention`.
        eps: the RMSNorms' :math:`\epsilon`.
        kernels: ``"written"`` (:class:`~dlscratch.layers.norms.RMSNorm`) or ``"fused"`` (``F.rms_norm``).
        **kwargs: the base layer's keywords (``bias``, ``causal``, ``attend``, ...).

    Shape:
        - as :class:`~dlscratch.layers.attention.modules.MultiHeadAttention`
    """

    def __init__(
        self, embed_dim: int, num_heads: int, num_kv_heads: int | None = None, *, eps: float = 1e-6,
        kernels: str = "written", **kwargs: object,
    ) -> None:
        super().__init__(embed_dim, num_heads, num_kv_heads, **kwargs)  # type: ignore[arg-type]
        self.q_norm = make_norm("rmsnorm", self.head_dim, kernels=kernels, eps=eps)  # over hs channels, per head
        self.k_norm = make_norm("rmsnorm", self.head_dim, kernels=kernels, eps=eps)

    def attend_heads(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, mask: torch.Tensor | None = None,
        causal: bool = True, self_attention: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        r"""Normalise the new queries and keys, then the base layer's positions, cache and attend.

        Shape:
            - q: :math:`(B, nh, T, hs)`; k, v: :math:`(B, nkv, S_{new}, hs)`; output as the base layer's
        """
        q, k = self.q_norm(q), self.k_norm(k)  # (B, nh, T, hs), (B, nkv, S_new, hs): each head on its own
        return super().attend_heads(q, k, v, mask=mask, causal=causal, self_attention=self_attention)
