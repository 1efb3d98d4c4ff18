"""The 2-D sin-cos position table: an independent loop over the formula, its relative-position property, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.layers.positional import sincos_2d_encoding, sinusoidal_encoding


def loop_table(h: int, w: int, C: int, base: float = 10000.0) -> torch.Tensor:
    q = C // 4
    rows = []
    for y in range(h):
        for x in range(w):
            freqs = [base ** (-k / (q - 1)) for k in range(q)]
            rows.append([math.sin(x * f) for f in freqs] + [math.cos(x * f) for f in freqs]
                        + [math.sin(y * f) for f in freqs] + [math.cos(y * f) for f in freqs])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize(("h", "w", "C"), [(1, 1, 8), (3, 5, 8), (4, 4, 64), (7, 2, 12)])
def test_equals_the_formula_written_as_loops(h: int, w: int, C: int) -> None:
    torch.testing.assert_close(sincos_2d_encoding(h, w, C, dtype=torch.float64), loop_table(h, w, C))


def test_dot_products_depend_only_on_the_offset() -> None:
    pe = sincos_2d_encoding(6, 6, 32, dtype=torch.float64).view(6, 6, 32)
    for dy, dx in [(0, 1), (2, -1), (-3, 3)]:
        dots = [pe[y, x] @ pe[y + dy, x + dx] for y in range(6) for x in range(6) if 0 <= y + dy < 6 and 0 <= x + dx < 6]
        torch.testing.assert_close(torch.stack(dots), dots[0].expand(len(dots)))


def test_each_axis_is_a_one_dimensional_table() -> None:
    # the x quarter-pairs are the 1-D sinusoidal table of the column (its frequencies, de-interleaved)
    pe = sincos_2d_encoding(2, 5, 16, dtype=torch.float64)
    assert torch.equal(pe[:5, :8], pe[5:, :8])  # same column, different row: same x channels
    assert torch.equal(pe[0, 8:], pe[4, 8:])  # same row: same y channels
    one_d = sinusoidal_encoding(5, 8, base=10000.0 ** (4 / 3), dtype=torch.float64)  # omega_k = base^(-2k/8 * 4/3) = base^(-k/3)
    torch.testing.assert_close(pe[:5, :4], one_d[:, 0::2])
    torch.testing.assert_close(pe[:5, 4:8], one_d[:, 1::2])


@pytest.mark.parametrize(("args", "match"), [
    ((0, 3, 8), "the grid height must be a positive integer, got 0"),
    ((3, 2.5, 8), "the grid width must be a positive integer, got 2.5"),
    ((3, 3, 10), "C must be a multiple of 4, at least 8, got 10"),
    ((3, 3, 4), "C must be a multiple of 4, at least 8, got 4"),
])
def test_bad_input_is_refused(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        sincos_2d_encoding(*args)
