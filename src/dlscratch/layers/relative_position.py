r"""T5's relative position bias (Raffel et al., 2020): one learned scalar per head and distance bucket.

T5 gives attention no position embedding. Instead, every head adds to the score of query
:math:`i` and key :math:`j` a learned scalar that depends only on the bucket of the relative
position :math:`n = j - i`:

.. math::

    s_{hij} = \mathbf{q}_{hi}^\top \mathbf{k}_{hj} + b_{h,\,\beta(j - i)}

The buckets are exact for short distances and logarithmically wider for long ones, up to
``max_distance``, beyond which every distance shares the last bucket. A bidirectional
(encoder) bias spends half the buckets on keys before the query and half on keys after it; a
causal (decoder) bias spends all of them on keys before. The bias is computed once, by the
first layer, and shared by every layer of the stack.

Introduced in chapter 28, *T5 and the encoder-decoder family*. Symbols: nh heads, T queries,
S keys.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import check_positive_int

__all__ = ["relative_position_bucket", "RelativePositionBias"]


def _check_buckets(num_buckets: int, max_distance: int, bidirectional: bool) -> None:
    check_positive_int("num_buckets", num_buckets)
    check_positive_int("max_distance", max_distance)
    half = num_buckets // 2 if bidirectional else num_buckets  # buckets per direction
    if half < 2:
        raise ValueError(f"need at least 2 buckets per direction, got num_buckets={num_buckets} "
                         f"(bidirectional={bidirectional})")
    if max_distance <= half // 2:
        raise ValueError(f"max_distance={max_distance} must exceed the exact range {half // 2} "
                         f"(half of the {half} buckets per direction)")


def relative_position_bucket(
    relative_position: torch.Tensor, *, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128
) -> torch.Tensor:
    r"""The bucket :math:`\beta(n)` of each relative position :math:`n = j - i` (key minus query).

    With :math:`N` buckets per direction (:math:`N = 16` of 32 when bidirectional, all 32 when
    causal) and :math:`m = N/2` exact ones, a distance :math:`d \ge 0` goes to

    .. math::

        \beta(d) = \begin{cases}
            d & d < m \\
            \min\!\Bigl(N - 1,\; m + \Bigl\lfloor \dfrac{\ln(d / m)}{\ln(D / m)} (N - m) \Bigr\rfloor\Bigr) & d \ge m
        \end{cases}

    with :math:`D` = ``max_distance``. Bidirectional: :math:`d = |n|`, and keys after the query
    (:math:`n > 0`) use buckets :math:`N \ldots 2N - 1`. Causal: :math:`d = \max(0, -n)`, so
    every future key shares bucket 0 (the causal mask removes them). The logarithm is taken in
    float32, as in Mesh TensorFlow and Hugging Face, so that distances on a bucket's edge land
    in the same bucket. Chapter 28.

    Raises:
        ValueError: for fewer than 2 buckets per direction, or ``max_distance`` inside the exact range.

    Shape:
        - relative_position: any shape, integer; output: same shape, ``long`` in :math:`[0, 2N)` or :math:`[0, N)`
    """
    _check_buckets(num_buckets, max_distance, bidirectional)
    n = relative_position.long()
    if bidirectional:
        num_buckets //= 2
        offset = (n > 0).long() * num_buckets  # keys after the query: the upper half
        d = n.abs()
    else:
        offset = torch.zeros_like(n)
        d = (-n).clamp(min=0)  # distance back to the key; future keys: 0
    max_exact = num_buckets // 2  # m: one bucket per distance below it
    ratio = d.clamp(min=1).float() / max_exact  # clamp: log(0) is never used, but avoid -inf
    large = max_exact + (torch.log(ratio) / math.log(max_distance / max_exact) * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)  # every distance >= D shares the last bucket
    return offset + torch.where(d < max_exact, d, large)


class RelativePositionBias(nn.Module):
    r"""The learned bias :math:`b_{h,\beta(j - i)}` for every head, query and key: T5's positions.

    .. math::

        B_{hij} = W_{\beta(j - i),\, h}, \qquad W \in \mathbb{R}^{\text{num\_buckets} \times nh}

    ``forward(T, S)`` returns the bias of :math:`T` queries at positions ``offset`` ... and
    :math:`S` keys at positions :math:`0 \ldots S-1`, to be added to the attention scores of
    every layer (T5 computes it in the first layer and passes it on). The weight's layout is
    Hugging Face's ``relative_attention_bias`` embedding. Chapter 28.

    Args:
        num_heads: nh.
        num_buckets: buckets in all (both directions together when ``bidirectional``); T5: 32.
        max_distance: distances from here on share the last bucket; T5: 128.
        bidirectional: encoder (``True``) or causal decoder (``False``).

    Shape:
        - output: :math:`(1, nh, T, S)`
    """

    def __init__(self, num_heads: int, num_buckets: int = 32, max_distance: int = 128, *, bidirectional: bool = True) -> None:
        super().__init__()
        check_positive_int("num_heads", num_heads)
        _check_buckets(num_buckets, max_distance, bidirectional)
        self.num_heads, self.num_buckets, self.max_distance = num_heads, num_buckets, max_distance
        self.bidirectional = bidirectional
        self.weight = nn.Parameter(torch.randn(num_buckets, num_heads))  # (buckets, nh)

    def forward(self, T: int, S: int, offset: int = 0) -> torch.Tensor:
        q_pos = torch.arange(offset, offset + T, device=self.weight.device)  # (T,)
        k_pos = torch.arange(S, device=self.weight.device)  # (S,)
        buckets = relative_position_bucket(k_pos[None, :] - q_pos[:, None], bidirectional=self.bidirectional,
                                           num_buckets=self.num_buckets, max_distance=self.max_distance)  # (T, S)
        return self.weight[buckets].permute(2, 0, 1).unsqueeze(0)  # (T, S, nh) -> (1, nh, T, S)

    def extra_repr(self) -> str:
        return (f"num_heads={self.num_heads}, num_buckets={self.num_buckets}, max_distance={self.max_distance}, "
                f"bidirectional={self.bidirectional}")
