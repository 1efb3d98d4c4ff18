r"""Exercise checkers for chapter 13, "Positional encoding" (topic prefix ``pos.``).

Every checker recomputes the answer with the package's tested
:func:`~dlscratch.layers.positional.sinusoidal_encoding` and
:class:`~dlscratch.layers.attention.modules.MultiHeadAttention`, and raises
:class:`AssertionError` with a hint when the reader's answer differs. The reference solutions live
in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.attention.modules import MultiHeadAttention
from ..layers.positional import sinusoidal_encoding
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "EQUI_T",
    "EQUI_SWAP",
    "SHARE_D_MODEL",
    "DECODE_D_MODEL",
    "DECODE_MAX_POSITION",
    "check_causal_equivariance",
    "check_position_share",
    "check_decode_position",
]

EQUI_T, EQUI_SWAP = 10, (3, 7)  # pos.causal_equivariance: T tokens, swap these two positions
SHARE_D_MODEL = 512  # pos.position_share: the base Transformer's width
DECODE_D_MODEL = 64  # pos.decode_position: recover p in [0, 5000) from PE(p), d_model = 64
DECODE_MAX_POSITION = 5000


def _unchanged_positions(seed: int) -> list[int]:
    r"""Positions t where causal attention on the swapped input equals the swapped output of the original."""
    gen = torch.Generator().manual_seed(seed)
    C, nh = 16, 4
    mha = MultiHeadAttention(C, nh, dtype=torch.float64)
    with torch.no_grad():
        for p in mha.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / math.sqrt(C))
        x = torch.randn(2, EQUI_T, C, generator=gen, dtype=torch.float64)
        perm = torch.arange(EQUI_T)
        a, b = EQUI_SWAP
        perm[a], perm[b] = b, a
        new = mha(x[:, perm], is_causal=True)[0]
        old = mha(x, is_causal=True)[0][:, perm]
    same = ((new - old).abs() < 1e-10).all(-1).all(0)  # (T,)
    return [t for t in range(EQUI_T) if same[t]]


@exercise("pos.causal_equivariance")
def check_causal_equivariance(answer: Any) -> None:
    r"""The positions t at which causal attention still commutes with swapping tokens ``EQUI_SWAP``."""
    if isinstance(answer, torch.Tensor) and answer.dim() <= 1 and not answer.is_floating_point():
        answer = answer.tolist()
    if not isinstance(answer, (list, tuple, set)) or not all(isinstance(t, int) and not isinstance(t, bool) for t in answer):
        raise AssertionError(f"give the positions as a list of ints, got {answer!r}.")
    got = sorted(set(answer))
    want = _unchanged_positions(0)
    if got == want:
        return
    a, b = EQUI_SWAP
    if got == list(range(EQUI_T)):
        raise AssertionError("that would be full attention. The causal mask lets token t see only tokens <= t: it carries position.")
    if not got:
        raise AssertionError("some positions see exactly the same query and the same set of keys after the swap: which?")
    if a in got or b in got:
        raise AssertionError(
            f"the token moved to position {a} (or {b}) keeps its query, but the set of tokens it may see changes."
        )
    if set(range(a)) <= set(got) and not any(t > b for t in got):
        raise AssertionError(f"positions after {b} also see all of tokens 0..{b}, the same set in another order.")
    if set(range(b + 1, EQUI_T)) <= set(got) and not any(t < a for t in got):
        raise AssertionError(f"positions before {a} see none of the swapped tokens.")
    raise AssertionError(
        f"position t's output depends on its own token and the set of tokens 0..t. Check each t against the swap {EQUI_SWAP}."
    )


def _position_share(C: int) -> float:
    gen = torch.Generator().manual_seed(13)
    T = 2048
    tok = torch.randn(T, C, generator=gen, dtype=torch.float64)  # sqrt(C) times an embedding with N(0, 1/C) entries
    pe = sinusoidal_encoding(T, C, dtype=torch.float64)
    return (pe.pow(2).sum(-1).mean() / (tok + pe).pow(2).sum(-1).mean()).item()


@exercise("pos.position_share")
def check_position_share(answer: Any) -> None:
    r"""The share of the expected squared norm of :math:`\sqrt{C}\,e + PE(p)` that comes from :math:`PE(p)`, ``C = 512``."""
    got = require_number(answer, "the share")
    C = SHARE_D_MODEL
    want = _position_share(C)  # (C/2) / (C + C/2) = 1/3, measured
    if abs(got - want) <= 0.01:
        return
    if abs(got - 0.5) <= 0.01:
        raise AssertionError("1/2 is |PE|**2 / |sqrt(C) e|**2, a ratio of the two; the share is |PE|**2 over the sum's.")
    if abs(got - math.sqrt(0.5)) <= 0.01:
        raise AssertionError("that is the ratio of the norms the chapter prints; square the norms and take a share.")
    if abs(got - (C / 2) / (C / 2 + 1)) <= 0.01:
        raise AssertionError("that is without the sqrt(C) factor; the paper multiplies the embedding by sqrt(d_model).")
    raise AssertionError(
        "E|sqrt(C) e|**2 = C * C * (1/C), |PE(p)|**2 = C/2, and the cross term has mean 0: "
        "the share is |PE|**2 / (E|sqrt(C) e|**2 + |PE|**2)."
    )


@exercise("pos.decode_position")
def check_decode_position(answer: Any) -> None:
    r"""``answer(pe)`` recovers the integer position ``p`` from the ``(64,)`` vector ``PE(p)`` of the package's table."""
    require_callable(answer, "decode_position")
    table = sinusoidal_encoding(DECODE_MAX_POSITION, DECODE_D_MODEL, dtype=torch.float64)
    gen = torch.Generator().manual_seed(13)
    positions = [0, 1, DECODE_MAX_POSITION - 1, 628, 629]  # 628 ~ 2 pi * 100: pairs w = 1, 0.1, 0.01 nearly repeat
    positions += torch.randint(0, DECODE_MAX_POSITION, (25,), generator=gen).tolist()
    for p in positions:
        got = answer(table[p].clone())
        if isinstance(got, torch.Tensor):
            if got.numel() != 1:
                raise AssertionError(f"return one position (an int), got a tensor of shape {tuple(got.shape)}.")
            got = got.item()
        if isinstance(got, float) and got.is_integer():
            got = int(got)
        if not isinstance(got, int) or isinstance(got, bool):
            raise AssertionError(f"return the position as an int, got {got!r}.")
        if got != p:
            raise AssertionError(
                f"PE({p}) decoded as {got}. Hint: <PE(p), PE(q)> is largest at q = p (compare with a table of "
                f"PE(q), q < {DECODE_MAX_POSITION}), or read the angle of each (sin, cos) pair with atan2."
            )
