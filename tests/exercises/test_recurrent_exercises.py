"""Checkers of the chapter 10 exercises: a correct answer passes, wrong ones fail with a specific hint, ``...`` is open."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.exercises import core, grade
from dlscratch.exercises.recurrent import (
    FORGET_KEEP,
    FORGET_STEPS,
    GRU_STEP_H,
    GRU_STEP_WEIGHTS,
    GRU_STEP_X,
    LSTM_PARAMS_HIDDEN,
    LSTM_PARAMS_INPUT,
    ORTH_BATCH,
    ORTH_HIDDEN,
    ORTH_INPUT,
    ORTH_STEPS,
)
from dlscratch.layers import RNNCell

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_recurrent(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("recurrent",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


def sig(a: float) -> float:
    return 1 / (1 + math.exp(-a))


# ---- rnn.lstm_params
I, H = LSTM_PARAMS_INPUT, LSTM_PARAMS_HIDDEN
LSTM_SOLUTION = 4 * H * I + 4 * H * H + 4 * H + 4 * H


# ---- rnn.gru_step: the step written out by hand (rows r1 r2 z1 z2 n1 n2)
def gru_by_hand(reset_after: bool = True, swap_z: bool = False) -> list[float]:
    x, h = GRU_STEP_X, GRU_STEP_H
    w_ih, w_hh = GRU_STEP_WEIGHTS["weight_ih"], GRU_STEP_WEIGHTS["weight_hh"]
    b_ih, b_hh = GRU_STEP_WEIGHTS["bias_ih"], GRU_STEP_WEIGHTS["bias_hh"]

    def pre(row: int, hh: tuple[float, ...] = h) -> tuple[float, float]:
        a = sum(w * v for w, v in zip(w_ih[row], x)) + b_ih[row]
        b = sum(w * v for w, v in zip(w_hh[row], hh)) + b_hh[row]
        return a, b

    out = []
    for j in range(2):
        r = sig(sum(pre(j)))
        z = sig(sum(pre(2 + j)))
        if reset_after:
            a, b = pre(4 + j)
            n = math.tanh(a + r * b)
        else:
            rs = [sig(sum(pre(k))) for k in range(2)]
            a, b = pre(4 + j, tuple(rk * hk for rk, hk in zip(rs, h)))
            n = math.tanh(a + b)
        out.append(z * n + (1 - z) * h[j] if swap_z else (1 - z) * n + z * h[j])
    return out


# ---- rnn.forget_bias
P = FORGET_KEEP ** (1 / FORGET_STEPS)
FORGET_SOLUTION = math.log(P / (1 - P))


@pytest.mark.parametrize(
    ("name", "answer", "correct"),
    [
        ("rnn.lstm_params", LSTM_SOLUTION, True),
        ("rnn.lstm_params", LSTM_SOLUTION - 4 * H, False),
        ("rnn.lstm_params", 4 * H * (I + H), False),
        ("rnn.lstm_params", 3 * H * (I + H) + 6 * H, False),
        ("rnn.lstm_params", "2560", False),
        ("rnn.lstm_params", ..., None),
        ("rnn.gru_step", gru_by_hand(), True),
        ("rnn.gru_step", [round(v, 3) for v in gru_by_hand()], True),
        ("rnn.gru_step", gru_by_hand(swap_z=True), False),
        ("rnn.gru_step", gru_by_hand(reset_after=False), False),
        ("rnn.gru_step", [0.5], False),
        ("rnn.gru_step", ..., None),
        ("rnn.forget_bias", FORGET_SOLUTION, True),
        ("rnn.forget_bias", round(FORGET_SOLUTION, 2), True),
        ("rnn.forget_bias", P, False),
        ("rnn.forget_bias", FORGET_SOLUTION + 1, False),
        ("rnn.forget_bias", 1.0, False),
        ("rnn.forget_bias", ..., None),
        ("rnn.beam", ("a", "b"), True),
        ("rnn.beam", ["a.", "b."], True),
        ("rnn.beam", ("a", "a"), False),
        ("rnn.beam", ("b", "b"), False),
        ("rnn.beam", "ab", False),
        ("rnn.beam", ..., None),
    ],
)
def test_checker(name: str, answer, correct: bool | None) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is correct, verdict.message


def test_hints_name_the_mistake() -> None:
    assert "two bias vectors" in grade("rnn.lstm_params", LSTM_SOLUTION - 4 * H).message
    assert "old* state" in grade("rnn.gru_step", gru_by_hand(swap_z=True)).message
    assert "after the matmul" in grade("rnn.gru_step", gru_by_hand(reset_after=False)).message
    assert "invert the sigmoid" in grade("rnn.forget_bias", P).message


# ---- rnn.orthogonal: the reader's measurement, with the chapter's recipe and any seed
def measured_factor(seed: int, orthogonal: bool = True) -> float:
    I, H, B, T = ORTH_INPUT, ORTH_HIDDEN, ORTH_BATCH, ORTH_STEPS
    torch.manual_seed(seed)
    cell = RNNCell(I, H)
    if orthogonal:
        with torch.no_grad():
            nn.init.orthogonal_(cell.weight_hh)
    x = torch.randn(B, T, I)
    u = F.normalize(torch.randn(B, H), dim=-1)
    h = torch.zeros(B, H, requires_grad=True)
    states = []
    for t in range(T):
        if t:
            h.retain_grad()
        states.append(h)
        h = cell(x[:, t], h)
    (h * u).sum().backward()
    g = [s.grad.norm(dim=-1).mean().item() for s in states]
    return (g[T - 40] / g[T - 5]) ** (1 / 35)


def test_orthogonal() -> None:
    for seed in (0, 5):  # any reader's own draw passes
        assert grade("rnn.orthogonal", measured_factor(seed)).correct
    _wrong("rnn.orthogonal", measured_factor(0, orthogonal=False), "default initialisation")
    _wrong("rnn.orthogonal", 1.0, "diag(1 - h**2)")
    _wrong("rnn.orthogonal", 1 / measured_factor(0), "wrong way round")
    _wrong("rnn.orthogonal", 0.7, "measure it")
    _wrong("rnn.orthogonal", "0.8", "as a number")
    assert grade("rnn.orthogonal", ...).correct is None


# ---- rnn.bidirectional
def bidirectional(x, fwd, bwd):
    out_f, _ = fwd(x)  # (B, T, H)
    out_b, _ = bwd(x.flip(1))  # (B, T, H), step s is position T - 1 - s
    return torch.cat([out_f, out_b.flip(1)], dim=-1)  # (B, T, 2H)


def test_bidirectional() -> None:
    assert_grades("rnn.bidirectional", lambda: bidirectional, [
        lambda: lambda x, f, b: torch.cat([f(x)[0], b(x.flip(1))[0]], -1),
        lambda: lambda x, f, b: torch.cat([f(x)[0], b(x)[0]], -1),
        lambda: lambda x, f, b: torch.cat([b(x.flip(1))[0].flip(1), f(x)[0]], -1),
        lambda: lambda x, f, b: f(x)[0],
        lambda: lambda x, f, b: (bidirectional(x, f, b), None),
        lambda: "not a function",
    ])
    _wrong("rnn.bidirectional", lambda x, f, b: torch.cat([f(x)[0], b(x.flip(1))[0]], -1), "flip its outputs back")
    _wrong("rnn.bidirectional", lambda x, f, b: torch.cat([f(x)[0], b(x)[0]], -1), "from its end")
    _wrong("rnn.bidirectional", lambda x, f, b: torch.cat([b(x.flip(1))[0].flip(1), f(x)[0]], -1), "forward direction first")
    _wrong("rnn.bidirectional", lambda x, f, b: f(x)[0], "(B, T, 2H)")
    _wrong("rnn.bidirectional", lambda x, f, b: (bidirectional(x, f, b), None), "not a tuple")
    _wrong("rnn.bidirectional", lambda x, f, b: bidirectional(x, f, b) * 1.01, "wrong output for")


def test_beam_hints() -> None:
    assert "most likely token at every step" in grade("rnn.beam", ("b", "b")).message
    assert "2 most likely prefixes" in grade("rnn.beam", ("a", "a")).message
