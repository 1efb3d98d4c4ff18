r"""Exercise checkers for chapter 7, "Optimizers, schedules and training mechanics" (prefix ``optim.``).

Every checker recomputes the answer independently (plain Python arithmetic, or torch's own
``clip_grad_norm_``, never the chapter's code) and raises :class:`AssertionError` with a hint
when the reader's answer differs. The reference solutions live in the tests, not here and not on
the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .answers import require_number
from .core import NotAttempted, exercise

__all__ = [
    "ADAM_P0",
    "ADAM_GRADS",
    "ADAM_LR",
    "ADAM_BETAS",
    "ADAM_EPS",
    "COSINE_PEAK_LR",
    "COSINE_WARMUP",
    "COSINE_TOTAL",
    "COSINE_MIN_RATIO",
    "COSINE_STEP",
    "SCALER_INIT",
    "SCALER_GROWTH_INTERVAL",
    "SCALER_OVERFLOWS",
    "check_adam_step",
    "check_warmup_cosine_lr",
    "check_clip",
    "check_loss_scale",
]

# optim.adam_step: one scalar parameter, two gradients, torch's default betas and eps
ADAM_P0 = 1.0
ADAM_GRADS = (2.0, -1.0)
ADAM_LR = 0.1
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

# optim.warmup_cosine_lr: the learning rate after COSINE_STEP completed updates
COSINE_PEAK_LR = 3e-4
COSINE_WARMUP = 100
COSINE_TOTAL = 1000
COSINE_MIN_RATIO = 0.1
COSINE_STEP = 324

# optim.loss_scale: growth factor 2, back-off 0.5; True marks a step whose gradients overflowed
SCALER_INIT = 2.0**16
SCALER_GROWTH_INTERVAL = 3
SCALER_OVERFLOWS = (False, False, True, False, False, False, True, True, False, False, False, False)


def _adam(bias_correction: bool, n_steps: int) -> float:
    p, m, v = ADAM_P0, 0.0, 0.0
    b1, b2 = ADAM_BETAS
    for t, g in enumerate(ADAM_GRADS[:n_steps], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = (m / (1 - b1**t), v / (1 - b2**t)) if bias_correction else (m, v)
        p -= ADAM_LR * m_hat / (math.sqrt(v_hat) + ADAM_EPS)
    return p


@exercise("optim.adam_step")
def check_adam_step(answer: Any) -> None:
    r"""The parameter after two Adam steps from ``ADAM_P0`` with gradients ``ADAM_GRADS``."""
    got = require_number(answer, "the parameter value")
    if math.isclose(got, _adam(True, 2), abs_tol=1e-4):
        return
    if math.isclose(got, _adam(False, 2), abs_tol=1e-4):
        raise AssertionError("that is Adam without bias correction: divide m by 1 - beta1^t and v by 1 - beta2^t.")
    if math.isclose(got, _adam(True, 1), abs_tol=1e-4):
        raise AssertionError("that is the value after the first step only; apply the second gradient too.")
    raise AssertionError(
        "not quite. Start from m = v = 0, update m and v with each gradient, bias-correct with the "
        "step number t = 1, 2, and subtract lr * m_hat / (sqrt(v_hat) + eps)."
    )


def _cosine(step: int, shift: int) -> float:
    w, S, r = COSINE_WARMUP, COSINE_TOTAL, COSINE_MIN_RATIO
    if step < w:
        return COSINE_PEAK_LR * (step + 1) / w
    progress = min(step - w + shift, S - w) / (S - w)
    return COSINE_PEAK_LR * (r + (1 - r) * 0.5 * (1 + math.cos(math.pi * progress)))


@exercise("optim.warmup_cosine_lr")
def check_warmup_cosine_lr(answer: Any) -> None:
    r"""The warm-up + cosine learning rate after ``COSINE_STEP`` completed updates."""
    got = require_number(answer, "the learning rate")
    want = _cosine(COSINE_STEP, 1)
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if math.isclose(got, want / COSINE_PEAK_LR, rel_tol=1e-3):
        raise AssertionError("that is the multiplier f(s); multiply by the peak learning rate.")
    if math.isclose(got, _cosine(COSINE_STEP, 0), rel_tol=1e-3):
        raise AssertionError("off by one step: the cosine phase starts at the peak, s = w - 1 (see the equation).")
    floorless = COSINE_PEAK_LR * 0.5 * (1 + math.cos(math.pi * (COSINE_STEP - COSINE_WARMUP + 1) / (COSINE_TOTAL - COSINE_WARMUP)))
    if math.isclose(got, floorless, rel_tol=1e-3):
        raise AssertionError("the cosine decays to min_ratio * peak, not to 0: rescale it into [r, 1].")
    raise AssertionError("not quite: find the progress (s - w + 1) / (S - w) through the cosine phase first.")


def _clip_cases() -> list[tuple[list[torch.Tensor], float]]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,), (2, 3)]
    big = [torch.randn(s, generator=gen, dtype=torch.float64) * 3 for s in shapes]
    small = [torch.randn(s, generator=gen, dtype=torch.float64) * 0.01 for s in shapes]
    lopsided = [torch.full((4,), 10.0, dtype=torch.float64), torch.full((2,), 0.1, dtype=torch.float64)]
    return [(big, 1.0), (small, 1.0), (lopsided, 5.0), ([torch.tensor([3.0, 4.0], dtype=torch.float64)], 1.0)]


@exercise("optim.clip")
def check_clip(answer: Any) -> None:
    r"""``answer(grads, max_norm)`` returns the gradients clipped by their global L2 norm."""
    if not callable(answer):
        raise AssertionError(f"pass your function itself (my_clip), not {type(answer).__name__}.")
    for grads, max_norm in _clip_cases():
        got = answer([g.clone() for g in grads], max_norm)
        if not isinstance(got, (list, tuple)) or len(got) != len(grads):
            raise AssertionError(f"return a list of {len(grads)} tensors, one per gradient.")
        want = [g.clone().requires_grad_() for g in grads]
        for w, g in zip(want, grads):
            w.grad = g.clone()
        total = torch.nn.utils.clip_grad_norm_(want, max_norm).item()
        if all(torch.allclose(torch.as_tensor(a, dtype=torch.float64), w.grad, rtol=1e-5, atol=1e-9) for a, w in zip(got, want)):
            continue
        if total < max_norm:
            raise AssertionError(
                f"with a global norm of {total:.3g} below max_norm={max_norm}, the gradients must come back unchanged."
            )
        if len(grads) > 1:
            per_tensor = [g * min(1.0, max_norm / g.norm().item()) for g in grads]
            if all(torch.allclose(torch.as_tensor(a, dtype=torch.float64), p, rtol=1e-5) for a, p in zip(got, per_tensor)):
                raise AssertionError("you clipped each tensor on its own; use one factor from the norm over all of them.")
        raise AssertionError("scale every gradient by max_norm / global_norm when the global norm exceeds max_norm.")


def _final_scale(overflows: tuple[bool, ...], interval: int, reset_on_overflow: bool = True) -> float:
    scale, clean = SCALER_INIT, 0
    for overflow in overflows:
        if overflow:
            scale, clean = scale / 2, (0 if reset_on_overflow else clean)
        else:
            clean += 1
            if clean == interval:
                scale, clean = scale * 2, 0
    return scale


@exercise("optim.loss_scale")
def check_loss_scale(answer: Any) -> None:
    r"""The dynamic loss scale after the steps of ``SCALER_OVERFLOWS``."""
    got = require_number(answer, "the loss scale")
    if got == _final_scale(SCALER_OVERFLOWS, SCALER_GROWTH_INTERVAL):
        return
    if got == _final_scale(SCALER_OVERFLOWS, SCALER_GROWTH_INTERVAL, reset_on_overflow=False):
        raise AssertionError("an overflow also resets the count of clean steps to 0.")
    if got == SCALER_INIT / 2 ** sum(SCALER_OVERFLOWS):
        raise AssertionError("the scale also grows (x2) after every run of growth_interval clean steps.")
    raise AssertionError("replay the steps: halve on an overflow, double after 3 clean steps in a row.")
