"""Checkers of the chapter 7 exercises: a correct answer passes, wrong ones fail with a specific hint."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlscratch.exercises import core, grade
from dlscratch.exercises.optimizers import ADAM_BETAS, ADAM_EPS, ADAM_GRADS, ADAM_LR, ADAM_P0
from dlscratch.optimizers import Adam

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_optimizers(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("optimizers",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- optim.adam_step: worked by hand (t = 1 gives m_hat = g, v_hat = g^2, a step of lr * sign(g))
def adam_by_hand() -> float:
    b1, b2 = ADAM_BETAS
    p = ADAM_P0 - ADAM_LR * 2.0 / (2.0 + ADAM_EPS)  # step 1
    m = b1 * (1 - b1) * 2.0 + (1 - b1) * -1.0
    v = b2 * (1 - b2) * 4.0 + (1 - b2) * 1.0
    return p - ADAM_LR * (m / (1 - b1**2)) / (math.sqrt(v / (1 - b2**2)) + ADAM_EPS)


def adam_uncorrected() -> float:
    b1, b2 = ADAM_BETAS
    p, m, v = ADAM_P0, 0.0, 0.0
    for g in ADAM_GRADS:
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p -= ADAM_LR * m / (math.sqrt(v) + ADAM_EPS)
    return p


def test_adam_step() -> None:
    p = nn.Parameter(torch.tensor([ADAM_P0], dtype=torch.float64))
    opt = Adam([p], lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS)
    for g in ADAM_GRADS:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    assert p.item() == pytest.approx(adam_by_hand(), abs=1e-12)
    assert grade("optim.adam_step", round(adam_by_hand(), 4)).correct
    assert_grades("optim.adam_step", adam_by_hand, [lambda: 0.9, lambda: 0.5, lambda: "x"])
    _wrong("optim.adam_step", adam_uncorrected(), "without bias correction")
    _wrong("optim.adam_step", 0.9, "first step only")
    _wrong("optim.adam_step", 0.5, "Start from m = v = 0")


# ---- optim.rmsprop_update
def rmsprop_update(p, g, state, lr, alpha, eps, momentum):
    if not state:
        state["square_avg"] = torch.zeros_like(p)
        state["buf"] = torch.zeros_like(p)
    s = state["square_avg"].mul_(alpha).add_((1 - alpha) * g * g)
    step = g / (s.sqrt() + eps)
    if momentum > 0:
        step = state["buf"].mul_(momentum).add_(step)
    p.sub_(lr * step)


def rmsprop_bias_corrected(p, g, state, lr, alpha, eps, momentum):
    state.setdefault("s", torch.zeros_like(p))
    state["t"] = state.get("t", 0) + 1
    state["s"].mul_(alpha).add_((1 - alpha) * g * g)
    p.sub_(lr * g / ((state["s"] / (1 - alpha ** state["t"])).sqrt() + eps))


def rmsprop_eps_inside(p, g, state, lr, alpha, eps, momentum):
    state.setdefault("s", torch.zeros_like(p))
    state["s"].mul_(alpha).add_((1 - alpha) * g * g)
    p.sub_(lr * g / (state["s"] + eps).sqrt())


def rmsprop_momentum_first(p, g, state, lr, alpha, eps, momentum):
    state.setdefault("s", torch.zeros_like(p))
    state.setdefault("b", torch.zeros_like(p))
    s = state["s"].mul_(alpha).add_((1 - alpha) * g * g)
    b = state["b"].mul_(momentum).add_(g)
    p.sub_(lr * b / (s.sqrt() + eps))


def test_rmsprop_update() -> None:
    wrongs = [lambda: rmsprop_bias_corrected, lambda: rmsprop_eps_inside, lambda: rmsprop_momentum_first, lambda: lambda *a: None]
    assert_grades("optim.rmsprop_update", lambda: rmsprop_update, wrongs)
    _wrong("optim.rmsprop_update", rmsprop_bias_corrected, "no bias correction")
    _wrong("optim.rmsprop_update", rmsprop_eps_inside, "outside the square root")
    _wrong("optim.rmsprop_update", rmsprop_momentum_first, "the buffer collects the scaled gradients")
    _wrong("optim.rmsprop_update", lambda *a: None, "in place")
    # the solution against torch's own RMSprop, independently of the package
    w = nn.Parameter(torch.randn(4, dtype=torch.float64))
    mine, state = w.detach().clone(), {}
    opt = torch.optim.RMSprop([w], lr=0.05, alpha=0.9, eps=1e-3, momentum=0.9)
    for _ in range(4):
        g = torch.randn(4, dtype=torch.float64)
        w.grad = g.clone()
        opt.step()
        rmsprop_update(mine, g, state, 0.05, 0.9, 1e-3, 0.9)
    torch.testing.assert_close(mine, w.detach())


# ---- optim.momentum_step: the measurement, with torch's SGD
def measured_momentum_step() -> float:
    w = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=0.01, momentum=0.9)
    for _ in range(100):
        before = w.item()
        w.grad = torch.ones_like(w)
        opt.step()
    return before - w.item()


def test_momentum_step() -> None:
    assert measured_momentum_step() == pytest.approx(0.01 * (1 - 0.9**100) / (1 - 0.9), rel=1e-9)
    assert_grades("optim.momentum_step", measured_momentum_step, [lambda: 0.01, lambda: 1.0, lambda: 0.05])
    _wrong("optim.momentum_step", 0.01, "first step only")
    _wrong("optim.momentum_step", 0.01 * 0.9**99, "does not decay away")
    _wrong("optim.momentum_step", 1.0, "without bound")
    _wrong("optim.momentum_step", 0.05, "measure it")


# ---- optim.bf16_weight: the measurement, with torch's SGD
def measured_bf16() -> float:
    w = nn.Parameter(torch.ones(1, dtype=torch.bfloat16))
    opt = torch.optim.SGD([w], lr=1e-3)
    for _ in range(1000):
        w.grad = torch.full_like(w, 0.1)
        opt.step()
    return w.item()


def test_bf16_weight() -> None:
    assert measured_bf16() == 1.0  # every update rounds back to 1
    assert_grades("optim.bf16_weight", measured_bf16, [lambda: 0.9, lambda: 0.5])
    _wrong("optim.bf16_weight", 0.9, "what float32 gives")
    _wrong("optim.bf16_weight", 0.5, "measure it")
