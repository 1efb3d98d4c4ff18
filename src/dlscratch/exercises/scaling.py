r"""Exercise checkers for chapter 29, "Scaling laws" (topic prefix ``scaling.``).

The number checkers recompute the answer with the package's tested
:func:`~dlscratch.training.scaling.gpt_flops_per_token` and
:meth:`~dlscratch.training.scaling.ChinchillaLaw.compute_optimal`; the function checker runs
:func:`~dlscratch.training.scaling.fit_power_law` on seeded random data and compares. A wrong
answer gets a hint. The reference solutions live in the tests.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..training.scaling import CHINCHILLA, fit_power_law, gpt_flops_per_token
from .answers import close, require_callable, require_number
from .core import exercise

__all__ = ["FLOP_CONFIG", "OPTIMUM_FLOPS", "check_flops_per_token", "check_chinchilla_n_opt", "check_power_law"]

# scaling.flops_per_token: a GPT of chapter 17 (MLP 4x as wide, tied head), training FLOPs per token
FLOP_CONFIG = {"n_layer": 4, "n_embd": 64, "block_size": 128, "vocab_size": 65}
# scaling.chinchilla_n_opt: Chinchilla's own training budget in FLOPs (Hoffmann et al., 2022)
OPTIMUM_FLOPS = 5.76e23


@exercise("scaling.flops_per_token")
def check_flops_per_token(answer: Any) -> None:
    r"""Training FLOPs per token of the GPT of ``FLOP_CONFIG``: :math:`3\,(24Ld^2 + 4LTd + 2Vd)`."""
    got = require_number(answer, "the FLOPs per token")
    c = FLOP_CONFIG
    L, C, T, V = c["n_layer"], c["n_embd"], c["block_size"], c["vocab_size"]
    want = gpt_flops_per_token(L, C, T, V)
    if close(got, want):
        return
    if close(got, want / 3):
        raise AssertionError("that is the forward pass only; the backward pass costs twice as much again.")
    if close(got, 6 * 12 * L * C**2):
        raise AssertionError("that is 6N with Kaplan's non-embedding N: add the attention over T positions and the head.")
    if close(got, 6 * (12 * L * C**2 + V * C)):
        raise AssertionError("that is 6N with the head counted; add the attention scores and their weighted sum, 4Td per block forward.")
    if close(got, want - 6 * V * C):
        raise AssertionError("the head (tied to the embedding, but still a V x C matmul) costs 2Vd per token forward.")
    if close(got, want - 6 * L * T * C):
        raise AssertionError("the causal mask does not skip the masked scores: count the full T x T, 4Td per block forward.")
    raise AssertionError(f"{got:,.0f} is not it: per block 24d^2 (projections and MLP) + 4Td (attention), plus 2Vd for the head (d = n_embd), forward; x3 to train.")


@exercise("scaling.chinchilla_n_opt")
def check_chinchilla_n_opt(answer: Any) -> None:
    r""":math:`N_\text{opt}` of Chinchilla's fitted law at ``OPTIMUM_FLOPS``: minimise :math:`L(N, C/6N)`."""
    got = require_number(answer, "N_opt")
    want = CHINCHILLA.compute_optimal([OPTIMUM_FLOPS])[0].item()
    if close(got, want, 1e-3):
        return
    if close(got, math.sqrt(OPTIMUM_FLOPS / 120), 1e-2):
        raise AssertionError("that is the 20-tokens-per-parameter rule; the question asks for the minimum of the fitted law L(N, D).")
    if close(got, CHINCHILLA.compute_optimal([OPTIMUM_FLOPS])[1].item(), 1e-3):
        raise AssertionError("that is D_opt, the tokens; N_opt = C / (6 D_opt).")
    if close(got, want * 6 ** (CHINCHILLA.beta / (CHINCHILLA.alpha + CHINCHILLA.beta)), 1e-3):
        raise AssertionError("use C / 6 (the number of parameter-token products), not C.")
    raise AssertionError(
        f"{got:.4g} is not it: set dL/dN = 0 along D = C / 6N: alpha A / N^alpha = beta B / D^beta, "
        "which gives N_opt = G (C/6)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta))."
    )


@exercise("scaling.power_law")
def check_power_law(answer: Any) -> None:
    r"""``answer(x, y)`` returns ``(scale, exponent)`` of :math:`y = k x^p`, least squares in log-log space."""
    fn = require_callable(answer, "my_power_law")
    gen = torch.Generator().manual_seed(29)
    for n in (2, 5, 11):
        x = torch.rand(n, generator=gen, dtype=torch.float64) * 1e5 + 10
        y = 3 * x ** -(torch.rand(1, generator=gen, dtype=torch.float64) / 5) * torch.exp(0.05 * torch.randn(n, generator=gen, dtype=torch.float64))
        got = fn(x, y)
        if not isinstance(got, tuple) or len(got) != 2:
            raise AssertionError(f"return a tuple (scale, exponent), got {type(got).__name__}")
        scale, exponent = (float(v) for v in got)
        want = fit_power_law(x, y)
        if close(exponent, want.exponent, 1e-6) and close(scale, want.scale, 1e-6):
            continue
        if close(exponent, -want.exponent, 1e-6):
            raise AssertionError("check the sign: return p of y = k x^p (negative for a falling loss), not alpha = -p.")
        if close(exponent, want.exponent, 1e-6) and close(scale, math.log(want.scale), 1e-6):
            raise AssertionError("the exponent is right; return the scale k itself, exp of the intercept.")
        if n > 2 and close(exponent, float(((y[-1] / y[0]).log() / (x[-1] / x[0]).log())), 1e-6):
            raise AssertionError("a line through two points is not the least-squares fit: use all the points.")
        raise AssertionError(
            f"wrong fit for {n} points: regress log y on log x, slope = cov(log x, log y) / var(log x) = p, "
            "intercept = mean(log y) - p mean(log x) = log k."
        )
