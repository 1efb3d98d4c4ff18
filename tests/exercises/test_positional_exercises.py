"""Checkers of the chapter 13 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.layers import sinusoidal_encoding


@pytest.fixture(autouse=True)
def _only_this_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("positional",))


# ---- pos.sinusoidal
def sin_solution(T: int, C: int) -> torch.Tensor:
    p = torch.arange(T, dtype=torch.float64)[:, None]
    w = 10000.0 ** (-torch.arange(0, C, 2, dtype=torch.float64) / C)
    pe = torch.zeros(T, C)
    pe[:, 0::2] = torch.sin(p * w)
    pe[:, 1::2] = torch.cos(p * w)
    return pe


def sin_swapped(T, C):
    pe = sin_solution(T, C)
    return pe.view(T, C // 2, 2).flip(-1).reshape(T, C)


def sin_halves(T, C):
    pe = sin_solution(T, C)
    return torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=1)


def sin_wrong_exponent(T, C):
    p = torch.arange(T, dtype=torch.float64)[:, None]
    w = 10000.0 ** (-torch.arange(C // 2, dtype=torch.float64) / C)  # forgot the 2
    return torch.stack([torch.sin(p * w), torch.cos(p * w)], -1).view(T, C)


def sin_transposed(T, C):
    return sin_solution(T, C).T


def sin_todo(T, C):
    raise NotImplementedError


# ---- pos.decode_position
TABLE = sinusoidal_encoding(5000, 64, dtype=torch.float64)


def decode_solution(pe: torch.Tensor) -> int:
    return int((TABLE @ pe).argmax())  # <PE(p), PE(q)> = sum_i cos(w_i (p - q)) peaks at q = p


def decode_fastest_pair_only(pe: torch.Tensor) -> int:
    return int(round(math.atan2(pe[0].item(), pe[1].item()) % (2 * math.pi)))


def decode_off_by_one(pe: torch.Tensor) -> int:
    return decode_solution(pe) + 1


CORRECT: list[tuple[str, Any]] = [
    ("pos.sinusoidal", sin_solution),
    ("pos.sinusoidal", lambda T, C: sinusoidal_encoding(T, C)),
    ("pos.longest_wavelength", 2 * math.pi * 10000 ** (510 / 512)),
    ("pos.longest_wavelength", torch.tensor(2 * math.pi * 10000 ** (510 / 512))),
    ("pos.dot_product", math.cos(2) + math.cos(0.02)),
    ("pos.decode_position", decode_solution),
    ("pos.decode_position", lambda pe: torch.tensor(decode_solution(pe))),
]

WRONG: list[tuple[str, Any]] = [
    ("pos.sinusoidal", sin_swapped),
    ("pos.sinusoidal", sin_halves),
    ("pos.sinusoidal", sin_wrong_exponent),
    ("pos.sinusoidal", sin_transposed),
    ("pos.sinusoidal", sin_todo),
    ("pos.sinusoidal", ...),
    ("pos.longest_wavelength", 2 * math.pi * 10000),
    ("pos.longest_wavelength", 10000 ** (510 / 512)),
    ("pos.longest_wavelength", 2 * math.pi),
    ("pos.longest_wavelength", "62000"),
    ("pos.longest_wavelength", ...),
    ("pos.dot_product", 2.0),
    ("pos.dot_product", math.cos(2) + math.cos(2 / 10) + math.cos(2 / 100) + math.cos(2 / 1000)),
    ("pos.dot_product", math.sin(3) * math.sin(5)),
    ("pos.dot_product", ...),
    ("pos.decode_position", decode_fastest_pair_only),
    ("pos.decode_position", decode_off_by_one),
    ("pos.decode_position", lambda pe: 1.5),
    ("pos.decode_position", ...),
]


@pytest.mark.parametrize(("name", "answer"), CORRECT)
def test_correct_answer_passes(name: str, answer: Any) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is True and verdict.message.startswith("✓"), verdict.message


@pytest.mark.parametrize(("name", "answer"), WRONG)
def test_wrong_or_missing_answer_fails(name: str, answer: Any) -> None:
    verdict = grade(name, answer)
    assert (verdict.correct, verdict.message[0]) in {(False, "✗"), (None, "○")}


@pytest.mark.parametrize(
    ("name", "answer", "hint"),
    [
        ("pos.sinusoidal", sin_swapped, "swapped"),
        ("pos.sinusoidal", sin_halves, "interleaves"),
        ("pos.sinusoidal", sin_transposed, "shape (T, C)"),
        ("pos.longest_wavelength", 2 * math.pi * 10000, "C/2 - 1"),
        ("pos.longest_wavelength", 10000 ** (510 / 512), "2 pi"),
        ("pos.longest_wavelength", 2 * math.pi, "shortest"),
        ("pos.dot_product", 2.0, "squared norm"),
        ("pos.dot_product", math.cos(2) + math.cos(2 / 10) + math.cos(2 / 100) + math.cos(2 / 1000), "C/2 = 2"),
        ("pos.decode_position", decode_off_by_one, "decoded as"),
        ("pos.decode_position", lambda pe: 1.5, "int"),
    ],
)
def test_wrong_answer_gets_a_hint(name: str, answer: Any, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


def test_references_are_independent_of_the_checkers() -> None:
    # longest wavelength: the period of the slowest channel pair, found numerically from the table
    C = 512
    omega_min = 10000.0 ** (-(C - 2) / C)
    assert math.isclose(2 * math.pi / omega_min, 2 * math.pi * 10000 ** (510 / 512))
    # dot product from the package's table
    pe = sinusoidal_encoding(6, 4, dtype=torch.float64)
    assert math.isclose((pe[3] @ pe[5]).item(), math.cos(2) + math.cos(0.02), rel_tol=1e-12)
