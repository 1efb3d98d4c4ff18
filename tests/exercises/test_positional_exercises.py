"""Checkers of the chapter 13 exercises: a correct answer passes, wrong ones fail with a specific hint, ``...`` is open."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlscratch.exercises import core, grade
from dlscratch.exercises.positional import EQUI_SWAP, EQUI_T, SHARE_D_MODEL
from dlscratch.layers import MultiHeadAttention, sinusoidal_encoding

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_this_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("positional",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- pos.causal_equivariance: the reader's measurement
def measured_unchanged(seed: int) -> list[int]:
    torch.manual_seed(seed)
    mha = MultiHeadAttention(16, 4, dtype=torch.float64)
    x = torch.randn(2, EQUI_T, 16, dtype=torch.float64)
    perm = torch.arange(EQUI_T)
    a, b = EQUI_SWAP
    perm[a], perm[b] = b, a
    with torch.no_grad():
        diff = (mha(x[:, perm], is_causal=True)[0] - mha(x, is_causal=True)[0][:, perm]).abs().amax((0, 2))
    return [t for t in range(EQUI_T) if diff[t] < 1e-10]


def test_causal_equivariance() -> None:
    assert measured_unchanged(0) == [0, 1, 2, 8, 9]
    assert_grades("pos.causal_equivariance", lambda: measured_unchanged(1), [lambda: [0, 1, 2], lambda: "0, 1, 2"])
    assert grade("pos.causal_equivariance", (9, 8, 2, 1, 0)).correct
    assert grade("pos.causal_equivariance", torch.tensor([0, 1, 2, 8, 9])).correct
    _wrong("pos.causal_equivariance", list(range(EQUI_T)), "carries position")
    _wrong("pos.causal_equivariance", [], "same set of keys")
    _wrong("pos.causal_equivariance", [0, 1, 2, 7, 8, 9], "keeps its query")
    _wrong("pos.causal_equivariance", [0, 1, 2], "positions after 7")
    _wrong("pos.causal_equivariance", [8, 9], "before 3")
    _wrong("pos.causal_equivariance", [0, 1, 5], "Check each t")
    _wrong("pos.causal_equivariance", [0.0, 1.0], "list of ints")


# ---- pos.position_share: measured with an embedding initialised as the chapter does
def measured_share(seed: int) -> float:
    torch.manual_seed(seed)
    C = SHARE_D_MODEL
    emb = nn.Embedding(1000, C)
    nn.init.normal_(emb.weight, std=C**-0.5)
    with torch.no_grad():
        tok = math.sqrt(C) * emb.weight[:512]
    pe = sinusoidal_encoding(512, C)
    return (pe.pow(2).sum(-1).mean() / (tok + pe).pow(2).sum(-1).mean()).item()


def test_position_share() -> None:
    assert_grades("pos.position_share", lambda: 1 / 3, [lambda: 0.5, lambda: "1/3"])
    assert grade("pos.position_share", measured_share(0)).correct
    _wrong("pos.position_share", 0.5, "a ratio of the two")
    _wrong("pos.position_share", math.sqrt(0.5), "ratio of the norms")
    _wrong("pos.position_share", 256 / 257, "without the sqrt(C)")
    _wrong("pos.position_share", 0.2, "cross term has mean 0")


# ---- pos.decode_position
TABLE = sinusoidal_encoding(5000, 64, dtype=torch.float64)


def decode_solution(pe: torch.Tensor) -> int:
    return int((TABLE @ pe).argmax())  # <PE(p), PE(q)> = sum_i cos(w_i (p - q)) peaks at q = p


def decode_fastest_pair_only(pe: torch.Tensor) -> int:
    return int(round(math.atan2(pe[0].item(), pe[1].item()) % (2 * math.pi)))


def decode_off_by_one(pe: torch.Tensor) -> int:
    return decode_solution(pe) + 1


def test_decode_position() -> None:
    assert_grades("pos.decode_position", lambda: decode_solution,
                  [lambda: decode_fastest_pair_only, lambda: decode_off_by_one, lambda: (lambda pe: 1.5), lambda: 3])
    assert grade("pos.decode_position", lambda pe: torch.tensor(decode_solution(pe))).correct
    _wrong("pos.decode_position", decode_off_by_one, "decoded as")
    _wrong("pos.decode_position", decode_fastest_pair_only, "decoded as")
    _wrong("pos.decode_position", lambda pe: 1.5, "as an int")
    _wrong("pos.decode_position", lambda pe: TABLE @ pe, "one position")
