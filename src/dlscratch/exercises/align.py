r"""Exercise checkers for chapter 31, "Alignment" (topic prefix ``align.``).

The function checkers run the package's own tested :func:`~dlscratch.training.dpo.dpo_loss` and
:func:`~dlscratch.training.ppo.gae` on seeded random inputs and compare; the number checker
recomputes the answer from the formula. A wrong answer gets a hint. The reference solutions live
in the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from ..training.dpo import dpo_loss
from ..training.ppo import gae
from .answers import require_callable, require_number
from .core import exercise

__all__ = ["BON_VALUES", "check_dpo_loss", "check_gae", "check_best_of_n_kl"]

# align.best_of_n_kl: the number of samples best-of-N draws from the supervised policy
BON_VALUES = {"n": 16}


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a.double(), b.double(), atol=1e-8, rtol=1e-6)


@exercise("align.dpo_loss")
def check_dpo_loss(answer: Any) -> None:
    r"""``answer(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta)``: the mean DPO loss, a scalar."""
    fn = require_callable(answer, "my_dpo_loss")
    gen = torch.Generator().manual_seed(31)
    for n, beta in ((8, 0.1), (1, 0.5), (5, 2.0)):
        pc, pr, rc, rr = (torch.randn(n, generator=gen, dtype=torch.float64) * 3 - 20 for _ in range(4))
        want = dpo_loss(pc, pr, rc, rr, beta)
        with torch.no_grad():
            got = fn(pc, pr, rc, rr, beta)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            raise AssertionError(f"return the mean loss over the pairs, one number; got {getattr(got, 'shape', type(got).__name__)}")
        if _close(got, want):
            continue
        margin = (pc - rc) - (pr - rr)
        if _close(got, -F.logsigmoid(beta * (pc - pr)).mean()):
            raise AssertionError("the reference model is missing: DPO compares log-ratios log pi/pi_ref, not the policy's log-probabilities alone.")
        if _close(got, -F.logsigmoid(-beta * margin).mean()):
            raise AssertionError("check the sign: the loss is low when the chosen response gained more probability (relative to pi_ref) than the rejected one.")
        if _close(got, -F.logsigmoid(margin).mean()):
            raise AssertionError("beta is missing: the implicit reward is beta times the log-ratio.")
        if _close(got, -F.logsigmoid(beta * margin).sum()):
            raise AssertionError("average over the pairs instead of summing.")
        raise AssertionError("wrong value. The loss is -mean(logsigmoid(beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected)))).")


@exercise("align.gae")
def check_gae(answer: Any) -> None:
    r"""``answer(rewards, values, gamma, lam)``: the generalised advantage estimates, :math:`(B, R)`."""
    fn = require_callable(answer, "my_gae")
    gen = torch.Generator().manual_seed(31)
    for B, R, gamma, lam in ((3, 6, 1.0, 0.95), (2, 1, 0.9, 0.5), (4, 9, 0.99, 0.8)):
        rewards = torch.randn(B, R, generator=gen, dtype=torch.float64)
        values = torch.randn(B, R, generator=gen, dtype=torch.float64)
        want, returns = gae(rewards, values, gamma, lam)
        with torch.no_grad():
            got = fn(rewards.clone(), values.clone(), gamma, lam)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != (B, R):
            raise AssertionError(f"return the advantages, a tensor of shape (B, R) = ({B}, {R}); got {getattr(got, 'shape', type(got).__name__)}")
        if _close(got, want):
            continue
        if _close(got, returns):
            raise AssertionError("those are the returns (advantage + value), the value head's target; return the advantages themselves.")
        if R > 1 and _close(got, gae(rewards, values, gamma, 1.0)[0]):
            raise AssertionError("that is lambda = 1 (Monte Carlo returns minus values); each step back multiplies by gamma * lam, not gamma.")
        if _close(got, rewards + gamma * torch.cat([values[:, 1:], values.new_zeros(B, 1)], 1) - values):
            raise AssertionError("that is the one-step TD error delta_t; GAE sums (gamma * lam)^l * delta_{t+l} over the steps that follow.")
        raise AssertionError(f"wrong values for B={B}, R={R}, gamma={gamma}, lam={lam}. Go backwards: A_t = delta_t + gamma * lam * A_(t+1), "
                             "with delta_t = r_t + gamma * V_(t+1) - V_t and V_R = 0 after the last token.")


@exercise("align.best_of_n_kl")
def check_best_of_n_kl(answer: Any) -> None:
    r"""The KL of best-of-N from the policy it samples from: :math:`\log N - (N - 1)/N`."""
    got = require_number(answer, "the KL in nats")
    n = BON_VALUES["n"]
    want = math.log(n) - (n - 1) / n
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if math.isclose(got, math.log(n), rel_tol=1e-3):
        raise AssertionError("log N is the log-ratio of the single best sample; the expectation over the rank of the winner subtracts (N - 1)/N.")
    if math.isclose(got, math.log2(n) - (n - 1) / n, rel_tol=1e-3) or math.isclose(got, want / math.log(2), rel_tol=1e-3):
        raise AssertionError("the book's KL is in nats (natural logarithm).")
    raise AssertionError(f"{got:g} is not it: the winner of N draws has density N F(y)^(N-1) p(y); take E[log of it over p].")
