r"""Exercise checkers for chapter 13, "Positional encoding" (topic prefix ``pos.``).

Every checker recomputes the answer independently (the paper's formula with Python's ``math``,
entry by entry) and raises :class:`AssertionError` with a hint when the reader's answer differs.
The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "WAVELENGTH_D_MODEL",
    "DOT_D_MODEL",
    "DOT_POSITIONS",
    "DECODE_D_MODEL",
    "DECODE_MAX_POSITION",
    "check_sinusoidal",
    "check_longest_wavelength",
    "check_dot_product",
    "check_decode_position",
]

BASE = 10000.0
WAVELENGTH_D_MODEL = 512  # pos.longest_wavelength: d_model of the base Transformer
DOT_D_MODEL = 4  # pos.dot_product: <PE(3), PE(5)> with d_model = 4
DOT_POSITIONS = (3, 5)
DECODE_D_MODEL = 64  # pos.decode_position: recover p in [0, 5000) from PE(p), d_model = 64
DECODE_MAX_POSITION = 5000


def _pe_entry(p: float, j: int, C: int, base: float = BASE) -> float:
    angle = p / base ** (2 * (j // 2) / C)
    return math.sin(angle) if j % 2 == 0 else math.cos(angle)


def _pe(T: int, C: int) -> torch.Tensor:
    return torch.tensor([[_pe_entry(p, j, C) for j in range(C)] for p in range(T)], dtype=torch.float64)


@exercise("pos.sinusoidal")
def check_sinusoidal(answer: Any) -> None:
    r"""``answer(T, C)`` returns the ``(T, C)`` sinusoidal table, channels interleaved sin, cos."""
    require_callable(answer, "my_sinusoidal")
    for T, C in ((50, 16), (3, 2), (7, 6)):
        got = answer(T, C)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a torch.Tensor, got {type(got).__name__}.")
        if tuple(got.shape) != (T, C):
            raise AssertionError(f"my_sinusoidal({T}, {C}) should have shape (T, C) = {(T, C)}, got {tuple(got.shape)}")
        got = got.detach().cpu().to(torch.float64)
        want = _pe(T, C)
        if torch.allclose(got, want, atol=1e-5, rtol=0):
            continue
        swapped = want.view(T, C // 2, 2).flip(-1).reshape(T, C)
        if torch.allclose(got, swapped, atol=1e-5, rtol=0):
            raise AssertionError("sin and cos are swapped: even channels 2i hold sin, odd channels 2i+1 hold cos.")
        halves = torch.cat([want[:, 0::2], want[:, 1::2]], dim=1)
        if torch.allclose(got, halves, atol=1e-5, rtol=0):
            raise AssertionError("you concatenated [all sin | all cos]; the paper interleaves: sin, cos, sin, cos, ...")
        if got[:, 0].abs().max() > 1 + 1e-6:
            raise AssertionError("entries must lie in [-1, 1]: did you forget the sin / cos?")
        raise AssertionError(
            f"wrong values for T={T}, C={C}. Channel 2i holds sin(p * w_i), 2i+1 holds cos(p * w_i), "
            "with w_i = 10000 ** (-2i / C) and i = 0 ... C/2 - 1."
        )


@exercise("pos.longest_wavelength")
def check_longest_wavelength(answer: Any) -> None:
    r"""The longest wavelength (in positions) of the sinusoidal encoding with ``d_model = 512``."""
    got = require_number(answer, "the wavelength")
    C = WAVELENGTH_D_MODEL
    slowest = BASE ** (-2 * (C // 2 - 1) / C)  # the last pair, i = C/2 - 1
    want = 2 * math.pi / slowest
    if math.isclose(got, want, rel_tol=1e-4):
        return
    if math.isclose(got, 2 * math.pi * BASE, rel_tol=1e-4):
        raise AssertionError("10000 * 2pi is the limit for C -> infinity; the last pair has i = C/2 - 1, not C/2.")
    if math.isclose(got, 1 / slowest, rel_tol=1e-4) or math.isclose(got, BASE, rel_tol=1e-3):
        raise AssertionError("a sinusoid sin(w p) repeats every 2 pi / w positions: you are missing the 2 pi.")
    if math.isclose(got, 2 * math.pi, rel_tol=1e-4):
        raise AssertionError("that is the shortest wavelength (i = 0); the question asks for the longest.")
    raise AssertionError(
        "find the smallest frequency w_i = 10000 ** (-2i / C) over i = 0 ... C/2 - 1; its period is 2 pi / w_i."
    )


@exercise("pos.dot_product")
def check_dot_product(answer: Any) -> None:
    r"""``<PE(3), PE(5)>`` for ``d_model = 4``."""
    got = require_number(answer, "the dot product")
    C = DOT_D_MODEL
    a, b = DOT_POSITIONS
    want = sum(_pe_entry(a, j, C) * _pe_entry(b, j, C) for j in range(C))
    if math.isclose(got, want, abs_tol=1e-4):
        return
    if math.isclose(got, C / 2, abs_tol=1e-4):
        raise AssertionError("C/2 is the squared norm, the dot product at offset 0; here the offset is 2.")
    if math.isclose(got, sum(math.cos((b - a) * BASE ** (-j / C)) for j in range(C)), abs_tol=1e-4):
        raise AssertionError("there are C/2 = 2 frequencies, w_i = 10000 ** (-2i / C), one per (sin, cos) pair.")
    raise AssertionError("use sin(x) sin(y) + cos(x) cos(y) = cos(x - y) for each pair: the sum of cos(w_i k), k = 2.")


@exercise("pos.decode_position")
def check_decode_position(answer: Any) -> None:
    r"""``answer(pe)`` recovers the integer position ``p`` from the ``(64,)`` vector ``PE(p)``."""
    require_callable(answer, "decode_position")
    C = DECODE_D_MODEL
    gen = torch.Generator().manual_seed(13)
    positions = [0, 1, DECODE_MAX_POSITION - 1, 628, 629]  # 628 ~ 2 pi * 100: pairs w = 1, 0.1, 0.01 nearly repeat
    positions += torch.randint(0, DECODE_MAX_POSITION, (25,), generator=gen).tolist()
    for p in positions:
        vec = torch.tensor([_pe_entry(p, j, C) for j in range(C)], dtype=torch.float64)
        got = answer(vec.clone())
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
