r"""Exercise checkers for chapter 18, "RoPE and ALiBi" (topic prefix ``rope.``).

The checkers call the package's own tested implementations (:mod:`dlscratch.layers.rope`,
:mod:`dlscratch.layers.alibi`) on seeded inputs and raise :class:`AssertionError` with a hint
when the reader's answer differs. The reference solutions live in the tests, not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.alibi import alibi_bias, alibi_slopes
from ..layers.rope import RoPE, apply_rope_interleaved, rope_angles
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "TURNS_HEAD_SIZE",
    "TURNS_CONTEXT",
    "SHARE_HEADS",
    "SHARE_KEYS",
    "SHARE_RECENT",
    "check_apply",
    "check_full_turns",
    "check_recent_share",
]

TURNS_HEAD_SIZE = 128  # rope.full_turns: LLaMA's head size
TURNS_CONTEXT = 2048  # ... trained on positions 0 ... 2047 (LLaMA 1)
SHARE_HEADS = 4  # rope.recent_share: ALiBi heads of the chapter model
SHARE_KEYS = 512  # a query that sees this many keys (itself and the 511 before it)
SHARE_RECENT = 64  # ... and the share of its attention on the most recent this many


@exercise("rope.apply")
def check_apply(answer: Any) -> None:
    r"""``answer(x, pos)``: half-split RoPE of ``x`` :math:`(..., T, hs)` at positions ``pos``, base 10,000."""
    require_callable(answer, "my_rope")
    gen = torch.Generator().manual_seed(18)
    for shape, start in (((2, 3, 7, 8), 0), ((5, 2), 3), ((1, 4, 16), 1000)):
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        T, hs = shape[-2], shape[-1]
        pos = torch.arange(start, start + T)
        got = answer(x.clone(), pos.clone())
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape:
            raise AssertionError(f"return a tensor shaped like x, {shape}, got {getattr(got, 'shape', type(got).__name__)}.")
        got = got.detach().to(torch.float64)
        want = RoPE(hs)(x, pos)
        if torch.allclose(got, want, atol=1e-8, rtol=0):
            continue
        if torch.allclose(got, apply_rope_interleaved(x, rope_angles(pos, hs)), atol=1e-8, rtol=0):
            raise AssertionError("that is the interleaved convention (pairs 2i, 2i+1); rotate the half-split pairs (i, i + hs/2).")
        if torch.allclose(got, RoPE(hs)(x, -pos), atol=1e-8, rtol=0):
            raise AssertionError("you rotate the wrong way: rotate_half(x) = (-x2, x1), added with + sin.")
        if torch.allclose(got.norm(dim=-1), x.norm(dim=-1), atol=1e-8) and start == 0:
            raise AssertionError("the norms are right, so it is a rotation, but not RoPE's: check theta_i = 10000 ** (-2i / hs).")
        raise AssertionError(
            f"wrong values for shape {shape} at positions {start}..{start + T - 1}. With phi = pos * theta_i, "
            "theta_i = 10000 ** (-2i / hs), i < hs/2, repeated for both halves: x * cos(phi) + rotate_half(x) * sin(phi)."
        )


@exercise("rope.full_turns")
def check_full_turns(answer: Any) -> None:
    r"""How many of the :math:`hs/2 = 64` rotation pairs turn through at least a full circle over positions 0 ... 2047."""
    got = require_number(answer, "the number of pairs")
    last = rope_angles(torch.tensor([TURNS_CONTEXT - 1]), TURNS_HEAD_SIZE)[0]  # (hs/2,): angles at the last trained position
    want = int((last >= 2 * math.pi).sum())
    if got == want:
        return
    if got == int((last >= math.pi).sum()):
        raise AssertionError("a full turn is 2 pi radians, not pi.")
    if got == TURNS_HEAD_SIZE // 2 or got == TURNS_HEAD_SIZE:
        raise AssertionError("the slow pairs turn very little: pair i turns by 2047 * 10000 ** (-2i / 128) by position 2047.")
    if got == int((last >= 1.0).sum()):
        raise AssertionError("you counted angles of at least 1 radian; a full turn is 2 pi radians.")
    raise AssertionError("count the pairs i < 64 with 2047 * 10000 ** (-2i / 128) >= 2 pi.")


@exercise("rope.recent_share")
def check_recent_share(answer: Any) -> None:
    r"""Per ALiBi head (4 heads), the attention share on the 64 most recent of 512 keys when all :math:`q^\top k` are equal."""
    try:
        got = torch.as_tensor(answer, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError) as err:
        raise AssertionError(f"give {SHARE_HEADS} numbers, one per head, got {answer!r}.") from err
    if got.numel() != SHARE_HEADS:
        raise AssertionError(f"give one share per head, {SHARE_HEADS} numbers, got {got.numel()}.")
    slopes = alibi_slopes(SHARE_HEADS)
    q_pos = torch.tensor([SHARE_KEYS - 1])  # the last query sees keys 0 ... 511
    weights = alibi_bias(slopes, q_pos, torch.arange(SHARE_KEYS))[:, 0].softmax(-1)  # (nh, 512)
    want = weights[:, -SHARE_RECENT:].sum(-1)  # (nh,)
    if torch.allclose(got, want, atol=1e-4, rtol=0):
        return
    if torch.allclose(got, want.flip(0), atol=1e-4, rtol=0):
        raise AssertionError("right numbers, wrong order: head 1 has the steepest slope, 2^-2 for 4 heads.")
    if torch.allclose(got, torch.full_like(want, SHARE_RECENT / SHARE_KEYS), atol=1e-4):
        raise AssertionError("that is the share without biases; ALiBi penalises key j by -m (i - j).")
    if (got < 0).any() or (got > 1).any():
        raise AssertionError("a share of a softmax lies in [0, 1].")
    raise AssertionError(
        "with equal scores the weight of the key at distance d is proportional to exp(-m d): sum d = 0 ... 63 over "
        "d = 0 ... 511 (two geometric series), with the slopes 2^-2, 2^-4, 2^-6, 2^-8."
    )
