"""Checkers of the chapter 36 exercises: a correct answer passes, a wrong or missing one fails with a hint."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dlscratch.exercises import core
from dlscratch.exercises.compress import LAYER_VALUES, SPARSE_VALUES
from tests.exercises.grading import assert_grades, assert_hint


@pytest.fixture(autouse=True)
def _only_compress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("compress",))


def int8_per_channel(w, levels=127, rounding=torch.round, per_tensor=False):  # noqa: ANN001, ANN201
    absmax = w.abs().amax() if per_tensor else w.abs().amax(dim=1, keepdim=True)
    scale = absmax / levels
    return torch.clamp(rounding(w / scale), -127, 127), scale.reshape(-1, 1)


def layer_bytes(codes_per_byte: int = 2, scale_bytes: int = 2) -> int:
    o, i, g = LAYER_VALUES["out_features"], LAYER_VALUES["in_features"], LAYER_VALUES["group_size"]
    return o * i // codes_per_byte + o * i // g * scale_bytes


def two_four() -> float:
    return SPARSE_VALUES["n"] / SPARSE_VALUES["m"] * (SPARSE_VALUES["value_bits"] + SPARSE_VALUES["index_bits"])


CASES: list[tuple[str, Any, list[Any]]] = [
    ("compress.int8_per_channel", lambda: int8_per_channel,
     [lambda: lambda w: int8_per_channel(w, 128), lambda: lambda w: int8_per_channel(w, rounding=torch.trunc),
      lambda: lambda w: int8_per_channel(w, per_tensor=True), lambda: lambda w: w, lambda: 3]),
    ("compress.layer_bytes", layer_bytes, [lambda: layer_bytes(1), lambda: layer_bytes(2, 4), lambda: 24576, lambda: 7, lambda: "x"]),
    ("compress.two_four_bits", two_four, [lambda: 8.0, lambda: 18.0, lambda: 16, lambda: 4.5]),
]


@pytest.mark.parametrize("name, solution, wrongs", CASES, ids=[c[0] for c in CASES])
def test_correct_wrong_and_missing(name: str, solution: Any, wrongs: list[Any]) -> None:
    assert_grades(name, solution, wrongs)


def test_specific_hints() -> None:
    assert_hint("compress.int8_per_channel", lambda w: int8_per_channel(w, 128), "-127..127")
    assert_hint("compress.int8_per_channel", lambda w: int8_per_channel(w, rounding=torch.trunc), "torch.round")
    assert_hint("compress.int8_per_channel", lambda w: int8_per_channel(w, per_tensor=True), "per-tensor")
    assert_hint("compress.int8_per_channel", lambda w: int8_per_channel(w, levels=1), "max|w| itself")
    assert_hint("compress.layer_bytes", layer_bytes(1), "packs two codes")
    assert_hint("compress.layer_bytes", layer_bytes(2, 4), "2 bytes each")
    assert_hint("compress.layer_bytes", 384 * 128 // 2, "codes alone")
    assert_hint("compress.two_four_bits", 8.0, "where each one sat")
    assert_hint("compress.two_four_bits", 18.0, "per *kept* weight")
