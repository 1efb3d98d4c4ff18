"""Checkers of the chapter 7 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.exercises import core, grade
from dlscratch.exercises.optimizers import (
    ADAM_BETAS,
    ADAM_EPS,
    ADAM_GRADS,
    ADAM_LR,
    ADAM_P0,
    COSINE_MIN_RATIO,
    COSINE_PEAK_LR,
    COSINE_STEP,
    COSINE_TOTAL,
    COSINE_WARMUP,
    SCALER_GROWTH_INTERVAL,
    SCALER_INIT,
    SCALER_OVERFLOWS,
)
from dlscratch.optimizers import Adam, warmup_cosine


@pytest.fixture(autouse=True)
def _only_optimizers(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("optimizers",))


# ---- optim.adam_step: worked by hand (t = 1 gives m_hat = g, v_hat = g^2, a step of lr * sign(g))
def adam_by_hand() -> float:
    b1, b2 = ADAM_BETAS
    p = ADAM_P0 - ADAM_LR * 2.0 / (2.0 + ADAM_EPS)  # step 1
    m = b1 * (1 - b1) * 2.0 + (1 - b1) * -1.0
    v = b2 * (1 - b2) * 4.0 + (1 - b2) * 1.0
    return p - ADAM_LR * (m / (1 - b1**2)) / (math.sqrt(v / (1 - b2**2)) + ADAM_EPS)


def test_adam_solution_agrees_with_our_optimizer() -> None:
    p = torch.nn.Parameter(torch.tensor([ADAM_P0], dtype=torch.float64))
    opt = Adam([p], lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS)
    for g in ADAM_GRADS:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    assert p.item() == pytest.approx(adam_by_hand(), abs=1e-12)


@pytest.mark.parametrize(
    "answer, correct",
    [(adam_by_hand(), True), (round(adam_by_hand(), 4), True), (0.9, False), (0.5, False), ("x", False), (..., None)],
)
def test_adam_step(answer, correct) -> None:
    assert grade("optim.adam_step", answer).correct is correct


def test_adam_step_hints_at_bias_correction() -> None:
    b1, b2 = ADAM_BETAS
    p, m, v = ADAM_P0, 0.0, 0.0
    for g in ADAM_GRADS:
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        p -= ADAM_LR * m / (math.sqrt(v) + ADAM_EPS)
    verdict = grade("optim.adam_step", p)
    assert verdict.correct is False and "bias correction" in verdict.message


# ---- optim.warmup_cosine_lr
COSINE_SOLUTION = COSINE_PEAK_LR * warmup_cosine(COSINE_STEP, COSINE_WARMUP, COSINE_TOTAL, COSINE_MIN_RATIO)


def test_cosine_solution_by_hand() -> None:
    progress = (COSINE_STEP - COSINE_WARMUP + 1) / (COSINE_TOTAL - COSINE_WARMUP)
    assert progress == 0.25
    by_hand = COSINE_PEAK_LR * (0.1 + 0.9 * 0.5 * (1 + math.sqrt(0.5)))
    assert COSINE_SOLUTION == pytest.approx(by_hand)


@pytest.mark.parametrize(
    "answer, correct",
    [(COSINE_SOLUTION, True), (2.6046e-4, True), (COSINE_SOLUTION / COSINE_PEAK_LR, False), (3e-4, False), (..., None)],
)
def test_warmup_cosine_lr(answer, correct) -> None:
    assert grade("optim.warmup_cosine_lr", answer).correct is correct


# ---- optim.clip
def clip_solution(grads, max_norm):
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    factor = min(1.0, max_norm / total)
    return [g * factor for g in grads]


def clip_per_tensor(grads, max_norm):
    return [g * min(1.0, max_norm / g.norm().item()) for g in grads]


def clip_always(grads, max_norm):
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    return [g * max_norm / total for g in grads]


def clip_todo(grads, max_norm):
    raise NotImplementedError


@pytest.mark.parametrize(
    "answer, correct",
    [(clip_solution, True), (clip_per_tensor, False), (clip_always, False), (lambda g, m: g[:1], False), (clip_todo, None), (3, False)],
)
def test_clip(answer, correct) -> None:
    assert grade("optim.clip", answer).correct is correct


def test_clip_hints() -> None:
    assert "each tensor on its own" in grade("optim.clip", clip_per_tensor).message
    assert "unchanged" in grade("optim.clip", clip_always).message


# ---- optim.loss_scale: replayed by hand
def test_loss_scale_by_hand() -> None:
    assert SCALER_INIT == 65536.0 and SCALER_GROWTH_INTERVAL == 3
    # F F | T: 32768 | F F F: 65536 | T: 32768 | T: 16384 | F F F: 32768 | F
    assert grade("optim.loss_scale", 32768.0).correct is True
    assert grade("optim.loss_scale", 32768).correct is True


@pytest.mark.parametrize("answer", [65536.0, SCALER_INIT / 2 ** sum(SCALER_OVERFLOWS), 16384.0])
def test_loss_scale_wrong(answer) -> None:
    assert grade("optim.loss_scale", answer).correct is False


def test_loss_scale_not_attempted() -> None:
    assert grade("optim.loss_scale", ...).correct is None
