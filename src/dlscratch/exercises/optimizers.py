r"""Exercise checkers for chapter 7, "Optimizers, schedules and training mechanics" (prefix ``optim.``).

Every checker recomputes the answer with torch or the package's tested optimizers
(``torch.optim.Adam``, :class:`~dlscratch.optimizers.RMSprop`, :class:`~dlscratch.optimizers.SGD`)
and raises :class:`AssertionError` with a hint when the reader's answer differs. The reference
solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..optimizers import SGD, RMSprop
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "ADAM_P0",
    "ADAM_GRADS",
    "ADAM_LR",
    "ADAM_BETAS",
    "ADAM_EPS",
    "RMS_SETTINGS",
    "MOMENTUM_LR",
    "MOMENTUM_MU",
    "MOMENTUM_STEP",
    "BF16_LR",
    "BF16_GRAD",
    "BF16_STEPS",
    "check_adam_step",
    "check_rmsprop_update",
    "check_momentum_step",
    "check_bf16_weight",
    "momentum_step",
    "bf16_weight",
]

# optim.adam_step: one scalar parameter, two gradients, torch's default betas and eps
ADAM_P0 = 1.0
ADAM_GRADS = (2.0, -1.0)
ADAM_LR = 0.1
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
# optim.rmsprop_update: (lr, alpha, eps, momentum) settings the reader's update is run with
RMS_SETTINGS = ((0.01, 0.99, 1e-8, 0.0), (0.05, 0.9, 1e-3, 0.9))
# optim.momentum_step: SGD with momentum on a loss whose gradient is always 1
MOMENTUM_LR, MOMENTUM_MU, MOMENTUM_STEP = 0.01, 0.9, 100
# optim.bf16_weight: a bfloat16 weight starting at 1.0, BF16_STEPS SGD steps of lr * grad
BF16_LR, BF16_GRAD, BF16_STEPS = 1e-3, 0.1, 1000


def _adam(bias_correction: bool, n_steps: int) -> float:
    """Adam written out, for the hints only (the right answer comes from torch.optim.Adam)."""
    p, m, v = ADAM_P0, 0.0, 0.0
    b1, b2 = ADAM_BETAS
    for t, g in enumerate(ADAM_GRADS[:n_steps], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = (m / (1 - b1**t), v / (1 - b2**t)) if bias_correction else (m, v)
        p -= ADAM_LR * m_hat / (math.sqrt(v_hat) + ADAM_EPS)
    return p


def _torch_adam() -> float:
    w = nn.Parameter(torch.tensor([ADAM_P0], dtype=torch.float64))
    opt = torch.optim.Adam([w], lr=ADAM_LR, betas=ADAM_BETAS, eps=ADAM_EPS)
    for g in ADAM_GRADS:
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    return w.item()


@exercise("optim.adam_step")
def check_adam_step(answer: Any) -> None:
    r"""The parameter after two Adam steps from ``ADAM_P0`` with gradients ``ADAM_GRADS`` (``torch.optim.Adam``)."""
    got = require_number(answer, "the parameter value")
    if math.isclose(got, _torch_adam(), abs_tol=1e-4):
        return
    if math.isclose(got, _adam(False, 2), abs_tol=1e-4):
        raise AssertionError("that is Adam without bias correction: divide m by 1 - beta1^t and v by 1 - beta2^t.")
    if math.isclose(got, _adam(True, 1), abs_tol=1e-4):
        raise AssertionError("that is the value after the first step only; apply the second gradient too.")
    raise AssertionError(
        "not quite. Start from m = v = 0, update m and v with each gradient, bias-correct with the "
        "step number t = 1, 2, and subtract lr * m_hat / (sqrt(v_hat) + eps)."
    )


@exercise("optim.rmsprop_update")
def check_rmsprop_update(answer: Any) -> None:
    r"""``answer(p, g, state, lr, alpha, eps, momentum)`` updates ``p`` in place like the package's ``RMSprop``, over five steps."""
    fn = require_callable(answer, "rmsprop_update")
    gen = torch.Generator().manual_seed(7)
    for lr, alpha, eps, mu in RMS_SETTINGS:
        for shape in ((3, 4), (5,)):
            start = torch.randn(shape, generator=gen, dtype=torch.float64)
            grads = [torch.randn(shape, generator=gen, dtype=torch.float64) * 10 ** (k - 2) for k in range(5)]
            ref = nn.Parameter(start.clone())
            opt = RMSprop([ref], lr=lr, alpha=alpha, eps=eps, momentum=mu)
            mine, state = start.clone(), {}
            for t, g in enumerate(grads, start=1):
                ref.grad = g.clone()
                opt.step()
                before = mine.clone()
                fn(mine, g.clone(), state, lr, alpha, eps, mu)
                if t == 1 and torch.equal(mine, before):
                    raise AssertionError("p did not change: update it in place (p.sub_(...)), as adam_update does.")
                if torch.allclose(mine, ref.detach(), rtol=1e-9, atol=1e-12):
                    continue
                setting = f"lr={lr}, alpha={alpha}, eps={eps}, momentum={mu}, step {t}"
                if t == 1:
                    r = (1 - alpha) ** 0.5 * g.abs()
                    if torch.allclose(before - mine, lr * g / (g.abs() + eps), rtol=1e-9):
                        raise AssertionError(
                            f"{setting}: that step is bias-corrected, as Adam's is. RMSprop has no bias correction: "
                            "s_1 = (1 - alpha) g^2, so the first steps are large."
                        )
                    if torch.allclose(before - mine, lr * g / (r**2 + eps).sqrt(), rtol=1e-9):
                        raise AssertionError(f"{setting}: eps is added to sqrt(s_t), outside the square root.")
                if mu > 0:
                    raise AssertionError(
                        f"{setting}: with momentum the buffer collects the scaled gradients, b = momentum * b + g / "
                        "(sqrt(s) + eps), and p moves by lr * b. Keep b in state."
                    )
                raise AssertionError(f"{setting}: wrong parameter; keep s in state and follow eq. (rmsprop).")


def momentum_step(lr: float = MOMENTUM_LR, mu: float = MOMENTUM_MU, n: int = MOMENTUM_STEP) -> float:
    r"""The size of step ``n`` of the package's ``SGD(lr, momentum=mu)`` when every gradient is 1."""
    w = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = SGD([w], lr=lr, momentum=mu)
    for _ in range(n):
        before = w.detach().clone()
        w.grad = torch.ones_like(w)
        opt.step()
    return (before - w.detach()).abs().item()


@exercise("optim.momentum_step")
def check_momentum_step(answer: Any) -> None:
    r"""How far step 100 of SGD with momentum 0.9 and ``lr = 0.01`` moves a weight whose gradient is always 1."""
    got = require_number(answer, "the size of the step")
    want = momentum_step()
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if math.isclose(got, MOMENTUM_LR, rel_tol=1e-3):
        raise AssertionError("lr * g is the first step only; the velocity keeps adding the gradient, eq. (momentum).")
    if math.isclose(got, MOMENTUM_LR * MOMENTUM_MU**(MOMENTUM_STEP - 1), rel_tol=1e-2) or got < MOMENTUM_LR:
        raise AssertionError("the velocity does not decay away here: every step adds a fresh gradient of 1 to it.")
    if math.isclose(got, MOMENTUM_LR * MOMENTUM_STEP, rel_tol=1e-2):
        raise AssertionError("the old gradients are discounted by mu per step, so the velocity cannot grow without bound.")
    raise AssertionError(
        "measure it: one weight, SGD([w], lr=0.01, momentum=0.9), w.grad = 1 before each of 100 steps; "
        "give the distance moved by the last step."
    )


def bf16_weight() -> float:
    r"""A bfloat16 weight at 1.0 after ``BF16_STEPS`` steps of the package's SGD with gradient ``BF16_GRAD``."""
    w = nn.Parameter(torch.ones(1, dtype=torch.bfloat16))
    opt = SGD([w], lr=BF16_LR)
    for _ in range(BF16_STEPS):
        w.grad = torch.full_like(w, BF16_GRAD)
        opt.step()
    return w.item()


@exercise("optim.bf16_weight")
def check_bf16_weight(answer: Any) -> None:
    r"""The value of a bfloat16 weight, starting at 1.0, after 1000 SGD steps of ``lr * grad = 1e-4`` each."""
    got = require_number(answer, "the final weight")
    want = bf16_weight()
    if got == want:
        return
    fp32 = 1.0 - BF16_STEPS * BF16_LR * BF16_GRAD
    if math.isclose(got, fp32, abs_tol=0.01):
        raise AssertionError(
            "0.9 is what float32 gives. bfloat16 keeps 8 bits of mantissa: near 1.0 its neighbours are 1 - 2^-8 "
            "and 1 + 2^-7. Where does 1 - 1e-4 round to?"
        )
    raise AssertionError(
        "measure it: w = nn.Parameter(torch.ones(1, dtype=torch.bfloat16)), SGD([w], lr=1e-3), w.grad = 0.1 "
        "before each of 1000 steps, then w.item()."
    )
