r"""Exercise checkers for chapter 35, "Diffusion models and text-to-image" (topic prefix ``diffusion.``).

The function checkers run the package's own tested
:meth:`~dlscratch.models.diffusion.NoiseSchedule.q_sample` and
:func:`~dlscratch.models.diffusion.guided_noise` on seeded random inputs and compare; the number
checker recomputes the answer from the schedules. A wrong answer gets a hint. The reference
solutions live in the tests.
"""

from __future__ import annotations

from typing import Any

import torch

from ..models.diffusion import NoiseSchedule, guided_noise
from .answers import require_callable
from .core import exercise

__all__ = ["SNR_VALUES", "check_q_sample", "check_guidance", "check_noisy_steps", "noisy_steps"]

# diffusion.noisy_steps: count the timesteps of a T-step schedule whose signal fraction abar_t is below `threshold`
SNR_VALUES = {"T": 1000, "threshold": 0.01}


def _inputs(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    sched = NoiseSchedule.cosine(100)
    x0 = torch.randn(5, 1, 3, 3, generator=gen, dtype=torch.float64)
    noise = torch.randn(5, 1, 3, 3, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 100, (5,), generator=gen)
    return x0, t, noise, sched.alphas_cumprod


@exercise("diffusion.q_sample")
def check_q_sample(answer: Any) -> None:
    r"""``answer(x0, t, noise, alphas_cumprod)``: :math:`\sqrt{\bar\alpha_t}\,\mathbf{x}_0 + \sqrt{1 - \bar\alpha_t}\,\boldsymbol\epsilon`, one :math:`t` per image."""
    fn = require_callable(answer, "my_q_sample")
    gen = torch.Generator().manual_seed(35)
    sched = NoiseSchedule.cosine(100)
    for _ in range(3):
        x0, t, noise, abar = _inputs(gen)
        with torch.no_grad():
            got = fn(x0, t, noise, abar)
        if not isinstance(got, torch.Tensor) or got.shape != x0.shape:
            raise AssertionError(f"return a tensor shaped like x0, {tuple(x0.shape)}; got {getattr(got, 'shape', type(got).__name__)}. "
                                 "Index abar with t and reshape it to (B, 1, 1, 1) so that it broadcasts over each image.")
        ab = abar[t].view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        alpha = sched.alphas[t].view(-1, 1, 1, 1)  # one step's alpha_t
        mistakes = [
            (ab * x0 + (1 - ab) * noise, "those are the variances: the mean scales x0 by sqrt(abar_t) and the noise by sqrt(1 - abar_t)."),
            ((1 - ab).sqrt() * x0 + ab.sqrt() * noise, "the two scales are swapped: the data keep sqrt(abar_t), which is near 1 at small t."),
            (alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise,
             "that is one step, q(x_t | x_{t-1}) with alpha_t; the closed form uses the product abar_t = alpha_0 ... alpha_t."),
        ]
        if torch.allclose(got, sched.q_sample(x0, t, noise)):
            continue
        hint = next((h for wrong, h in mistakes if torch.allclose(got, wrong)), None)
        raise AssertionError(hint or "wrong values: x_t = sqrt(abar[t]) * x0 + sqrt(1 - abar[t]) * noise, with abar[t] broadcast per image.")


@exercise("diffusion.guidance")
def check_guidance(answer: Any) -> None:
    r"""``answer(eps_uncond, eps_cond, w)``: :math:`(1 + w)\,\epsilon_c - w\,\epsilon_\varnothing`."""
    fn = require_callable(answer, "my_guided_noise")
    gen = torch.Generator().manual_seed(36)
    for w in (1.5, 4.0, 0.0):  # w = 0 last: there the conventions coincide
        eu, ec = torch.randn(4, 2, generator=gen), torch.randn(4, 2, generator=gen)
        with torch.no_grad():
            got = fn(eu, ec, w)
        if not isinstance(got, torch.Tensor) or got.shape != ec.shape:
            raise AssertionError(f"return a tensor shaped like eps_cond, {tuple(ec.shape)}.")
        if torch.allclose(got, guided_noise(eu, ec, w)):
            continue
        mistakes = [
            (eu + w * (ec - eu), "that is diffusers' guidance_scale convention, s = 1 + w; here w = 0 must give the conditional model: "
                                 "(1 + w) eps_cond - w eps_uncond."),
            ((1 + w) * eu - w * ec, "the signs are swapped: guidance moves away from the unconditional prediction, towards the conditional one."),
        ]
        hint = next((h for wrong, h in mistakes if torch.allclose(got, wrong)), None)
        raise AssertionError(hint or f"wrong values at w = {w}: extrapolate from eps_uncond through eps_cond, (1 + w) eps_cond - w eps_uncond.")


def noisy_steps(schedule: NoiseSchedule, threshold: float) -> int:
    r"""How many timesteps have :math:`\bar\alpha_t <` ``threshold``."""
    return int((schedule.alphas_cumprod < threshold).sum())


@exercise("diffusion.noisy_steps")
def check_noisy_steps(answer: Any) -> None:
    r"""``(linear, cosine)``: the number of timesteps with :math:`\bar\alpha_t` below ``SNR_VALUES["threshold"]`` in each schedule."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) for a in answer):
        raise AssertionError(f"give a pair of ints (linear count, cosine count), got {answer!r}.")
    T, thr = SNR_VALUES["T"], SNR_VALUES["threshold"]
    want = (noisy_steps(NoiseSchedule.linear(T), thr), noisy_steps(NoiseSchedule.cosine(T), thr))
    got = tuple(answer)
    if got == want:
        return
    if got == want[::-1]:
        raise AssertionError("swapped: the first number is the linear schedule's, the second the cosine schedule's.")
    if got == (T - want[0], T - want[1]):
        raise AssertionError("that counts the steps with abar_t above the threshold; count those below it (almost pure noise).")
    raise AssertionError("not quite: build NoiseSchedule.linear(T) and NoiseSchedule.cosine(T) and count alphas_cumprod < threshold.")
