r"""Scans of the first-order linear recurrence :math:`h_t = a_t \odot h_{t-1} + b_t`.

Every state-space model of chapter 25 ends in this recurrence: the time-invariant SSM of S4
with :math:`a_t = \bar{A}` for every :math:`t`, the selective SSM of Mamba with
:math:`a_t = \exp(\Delta_t A)`. Three ways to compute all the :math:`h_t` from :math:`h_0 = 0`:

* :func:`sequential_scan`: the recurrence itself, a loop over the :math:`T` steps;
* :func:`hillis_steele_scan`: :math:`\lceil \log_2 T \rceil` levels, each combining every
  element with the one :math:`2^k` steps back (Hillis & Steele, 1986): :math:`O(T \log T)` work;
* :func:`blelloch_scan`: combine neighbouring pairs, scan the half-length sequence of pairs,
  then fill in the other half (the odd-even, work-efficient scan of Blelloch, 1990): :math:`O(T)`
  work in :math:`2 \log_2 T` levels.

All three are exact in real arithmetic because the combination of two steps,

.. math::

    (a_1, b_1) \bullet (a_2, b_2) = (a_2 a_1,\; a_2 b_1 + b_2),

is associative. They are written with out-of-place tensor operations only, so autograd
differentiates them. Time is dimension 1 and every other dimension is a batch of independent
recurrences. Introduced in chapter 25, *State-space models and Mamba*.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["combine", "sequential_scan", "hillis_steele_scan", "blelloch_scan", "SCANS"]


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got a {tuple(a.shape)} and b {tuple(b.shape)}")
    if a.dim() < 2 or a.size(1) < 1:
        raise ValueError(f"a and b must be (B, T, ...) with T >= 1, got shape {tuple(a.shape)}")


def combine(a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The associative operator: step 1 then step 2 is one step :math:`(a_2 a_1, a_2 b_1 + b_2)`."""
    return a2 * a1, a2 * b1 + b2


def sequential_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""All states of :math:`h_t = a_t \odot h_{t-1} + b_t`, :math:`h_0 = 0`, by a loop over time.

    Shape:
        - a, b: :math:`(B, T, \ldots)`; output :math:`(B, T, \ldots)`, :math:`h_1 \ldots h_T`
    """
    _check(a, b)
    h = b[:, 0]  # h_1 = a_1 * 0 + b_1
    states = [h]
    for t in range(1, a.size(1)):
        h = a[:, t] * h + b[:, t]  # (B, ...)
        states.append(h)
    return torch.stack(states, dim=1)  # (B, T, ...)


def hillis_steele_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""The same states in :math:`\lceil \log_2 T \rceil` levels: at level :math:`k`, each position absorbs the one :math:`2^k` back.

    After level :math:`k`, :math:`(a_t, b_t)` is the combination of the :math:`2^{k+1}` steps
    ending at :math:`t` (fewer at the start), so once :math:`2^{k+1} \ge T`, :math:`b_t = h_t`.
    Positions with nothing :math:`2^k` back combine with the identity :math:`(1, 0)`.

    Shape:
        - a, b: :math:`(B, T, \ldots)`; output :math:`(B, T, \ldots)`
    """
    _check(a, b)
    T, shift = a.size(1), 1
    while shift < T:
        pad = [0, 0] * (a.dim() - 2) + [shift, 0]  # pad time (dim 1) at the front: F.pad lists dims last-first
        a_prev = F.pad(a, pad, value=1.0)[:, :T]  # (B, T, ...): a_{t - shift}, 1 before the start
        b_prev = F.pad(b, pad, value=0.0)[:, :T]  # (B, T, ...): b_{t - shift}, 0 before the start
        a, b = combine(a_prev, b_prev, a, b)
        shift *= 2
    return b


def blelloch_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""The same states with :math:`O(T)` work: pair up neighbours, scan the pairs, fill in the rest.

    With the steps paired as (1, 2), (3, 4), ..., the combined pairs form a recurrence of half
    the length whose states are :math:`h_2, h_4, \ldots`; scanning it (recursively, down to one
    step) gives them, and each odd state is one step from the even state before it:
    :math:`h_{2i+1} = a_{2i+1} h_{2i} + b_{2i+1}`. An odd length is padded with the identity step.

    Shape:
        - a, b: :math:`(B, T, \ldots)`; output :math:`(B, T, \ldots)`
    """
    _check(a, b)
    T = a.size(1)
    if T == 1:
        return b
    if T % 2:
        pad = [0, 0] * (a.dim() - 2) + [0, 1]  # one identity step at the end of time
        return blelloch_scan(F.pad(a, pad, value=1.0), F.pad(b, pad, value=0.0))[:, :T]
    a_odd, a_even = a.unflatten(1, (T // 2, 2)).unbind(2)  # (B, T/2, ...): steps 1, 3, 5, ... and 2, 4, 6, ...
    b_odd, b_even = b.unflatten(1, (T // 2, 2)).unbind(2)
    h_even = blelloch_scan(*combine(a_odd, b_odd, a_even, b_even))  # (B, T/2, ...): h_2, h_4, ...
    h_odd = torch.cat([b_odd[:, :1], a_odd[:, 1:] * h_even[:, :-1] + b_odd[:, 1:]], dim=1)  # h_1, h_3, ...
    return torch.stack([h_odd, h_even], dim=2).flatten(1, 2)  # (B, T, ...): interleaved back


SCANS = {"sequential": sequential_scan, "hillis_steele": hillis_steele_scan, "blelloch": blelloch_scan}
