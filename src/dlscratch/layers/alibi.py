r"""ALiBi (Press et al., 2022): attention with linear biases instead of position embeddings.

Each head :math:`h` adds to the score of query :math:`i` and key :math:`j \le i` a penalty
proportional to their distance, with a fixed head-specific slope :math:`m_h`:

.. math::

    s_{hij} = \frac{q_i^\top k_j}{\sqrt{hs}} - m_h\,(i - j)

For :math:`n` heads, :math:`n` a power of two, the slopes are the geometric sequence
:math:`m_h = 2^{-8h/n}`, :math:`h = 1, \ldots, n`. Otherwise the paper takes the :math:`2^{\lfloor
\log_2 n \rfloor}` slopes of the nearest smaller power of two and adds every other slope of the
next power of two, until there are :math:`n`. Nothing is learned, and no position is ever out of
range: the model can be run on contexts longer than it was trained on.

Introduced in chapter 18, *RoPE and ALiBi*. Symbols: nh heads, T queries, S keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .attention.attend import PositionHook
from .checks import check_positive_int

__all__ = ["alibi_slopes", "alibi_bias", "ALiBi"]


def _power_of_two_slopes(n: int) -> list[float]:
    start = 2.0 ** (-8.0 / n)  # m_1 = 2^(-8/n); m_h = m_1^h
    return [start ** (h + 1) for h in range(n)]


def alibi_slopes(n_head: int) -> torch.Tensor:
    r"""The per-head slopes :math:`m_1 > m_2 > \ldots`, including the rule for non-powers of two.

    .. math::

        m_h = 2^{-8h/n} \quad (n = 2^k); \qquad
        m = \operatorname{slopes}(2^k) \,\Vert\, \operatorname{slopes}(2^{k+1})_{0, 2, 4, \ldots}
        \quad (2^k < n < 2^{k+1})

    Shape:
        - output: :math:`(nh,)`, float64
    """
    check_positive_int("n_head", n_head)
    closest = 2 ** math.floor(math.log2(n_head))
    slopes = _power_of_two_slopes(closest)
    if closest < n_head:  # the odd-indexed extras: every other slope of the next power of two
        slopes += _power_of_two_slopes(2 * closest)[0::2][: n_head - closest]
    return torch.tensor(slopes, dtype=torch.float64)


def alibi_bias(slopes: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    r"""The additive scores :math:`-m_h\,(i - j)` of queries at ``q_pos`` and keys at ``k_pos``.

    Future keys (:math:`j > i`) get a positive value here; the causal mask removes them.

    Shape:
        - slopes: :math:`(nh,)`; q_pos: :math:`(T,)`; k_pos: :math:`(S,)`; output: :math:`(nh, T, S)`
    """
    distance = (q_pos[:, None] - k_pos[None, :]).to(slopes.dtype)  # (T, S): i - j
    return -slopes[:, None, None] * distance[None]  # (nh, 1, 1) * (1, T, S) -> (nh, T, S)


@dataclass(frozen=True)
class ALiBi:
    r"""ALiBi biases for an attention layer of ``n_head`` heads: ``attn.positions = ALiBi(nh).hook()``.

    Calling it returns :func:`alibi_bias` for query and key positions, in ``dtype``.

    Shape:
        - q_pos: :math:`(T,)`; k_pos: :math:`(S,)`; output: :math:`(nh, T, S)`
    """

    n_head: int
    dtype: torch.dtype = torch.float32
    slopes: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slopes", alibi_slopes(self.n_head))  # (nh,) float64, fixed

    def __call__(self, q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
        slopes = self.slopes.to(device=q_pos.device)
        return alibi_bias(slopes, q_pos, k_pos).to(self.dtype)  # (nh, T, S)

    def hook(self) -> PositionHook:
        r"""These biases as an attention layer's position hook."""
        return PositionHook(bias=self)
