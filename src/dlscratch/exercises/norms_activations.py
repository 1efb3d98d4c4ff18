r"""Exercise checkers for chapter 20, "Normalization and activations" (topic prefix ``normact.``).

Each checker compares the reader's answer with the package's own tested implementation
(:class:`~dlscratch.layers.norms.RMSNorm` and autograd, :class:`~dlscratch.layers.norms.LayerNorm`,
:func:`~dlscratch.layers.feedforward.swiglu_hidden`, :class:`~dlscratch.layers.feedforward.MLP`,
:class:`~dlscratch.layers.feedforward.SwiGLU`) and raises :class:`AssertionError` with a hint
when they differ. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..layers.feedforward import MLP, SwiGLU, swiglu_hidden
from ..layers.norms import LayerNorm, RMSNorm
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "LLAMA_DIM",
    "LLAMA_MULTIPLE_OF",
    "INIT_DIM",
    "INIT_STD",
    "INIT_ROWS",
    "INVARIANCES",
    "check_rmsnorm_backward",
    "check_swiglu_hidden",
    "check_init_ratio",
    "check_invariances",
]

RMS_EPS = 1e-6  # normact.rmsnorm_backward: eps of the norm whose input gradient the reader writes
LLAMA_DIM, LLAMA_MULTIPLE_OF = 4096, 256  # normact.swiglu_hidden: LLaMA 7B's width and rounding
INIT_DIM, INIT_STD, INIT_ROWS = 64, 0.02, 4096  # normact.init_ratio: C, weight std, rows of N(0, 1) input
INVARIANCES = ("layernorm_shift", "layernorm_scale", "rmsnorm_shift", "rmsnorm_scale")  # normact.invariances


def _rms_grad_reference(x: torch.Tensor, w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    norm = RMSNorm(x.size(-1), eps=RMS_EPS).double()
    with torch.no_grad():
        norm.weight.copy_(w)
    xx = x.clone().requires_grad_(True)
    norm(xx).backward(g)
    return xx.grad


@exercise("normact.rmsnorm_backward")
def check_rmsnorm_backward(answer: Any) -> None:
    r"""``answer(x, weight, grad_y, eps)`` returns :math:`\partial L / \partial x` of RMSNorm, no autograd needed."""
    require_callable(answer, "rmsnorm_backward")
    gen = torch.Generator().manual_seed(20)
    for shape in ((4, 7), (2, 3, 16), (1, 5), (3, 1)):
        x = torch.randn(shape, generator=gen, dtype=torch.float64) * 2 + 0.5
        w = torch.randn(shape[-1], generator=gen, dtype=torch.float64)
        g = torch.randn(shape, generator=gen, dtype=torch.float64)
        got = answer(x.clone(), w.clone(), g.clone(), RMS_EPS)
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a torch.Tensor, got {type(got).__name__}.")
        if tuple(got.shape) != tuple(shape):
            raise AssertionError(f"the gradient has the input's shape {tuple(shape)}, got {tuple(got.shape)}.")
        got = got.detach().to(torch.float64)
        want = _rms_grad_reference(x, w, g)
        if torch.allclose(got, want, atol=1e-8, rtol=1e-6):
            continue
        r = (x.pow(2).mean(-1, keepdim=True) + RMS_EPS).sqrt()
        gw = g * w
        if torch.allclose(got, gw / r, atol=1e-8, rtol=1e-6):
            raise AssertionError(
                "you treated the rms r as a constant. It depends on x too: d r / d x_j = x_j / (C r), "
                "which adds the term - x * mean(g * w * x) / r**3."
            )
        if torch.allclose(got, g / r - x * (g * x).mean(-1, keepdim=True) / r**3, atol=1e-8, rtol=1e-6):
            raise AssertionError("the upstream gradient reaches x_hat through the gain: use g * weight, not g.")
        xh = x / r
        if torch.allclose(got, (gw - gw.mean(-1, keepdim=True) - xh * (gw * xh).mean(-1, keepdim=True)) / r, atol=1e-8, rtol=1e-6):
            raise AssertionError("that is LayerNorm's gradient: RMSNorm subtracts no mean, so there is no - mean(g * w) term.")
        raise AssertionError(
            f"wrong gradient for input shape {tuple(shape)}. With r = sqrt(mean(x**2) + eps) and u = g * weight, "
            "dx = u / r - x * mean(u * x) / r**3 (means over the last dimension)."
        )


@exercise("normact.swiglu_hidden")
def check_swiglu_hidden(answer: Any) -> None:
    r"""LLaMA 7B's SwiGLU hidden width: ``dim = 4096``, rounded up to a multiple of 256."""
    got = require_number(answer, "the hidden width")
    want = swiglu_hidden(LLAMA_DIM, LLAMA_MULTIPLE_OF)
    if got == want:
        return
    third = 8 * LLAMA_DIM / 3
    if abs(got - third) < 1:
        raise AssertionError(f"{got:g} is 2/3 of 4C before rounding; LLaMA rounds it up to a multiple of {LLAMA_MULTIPLE_OF}.")
    if got == 4 * LLAMA_DIM:
        raise AssertionError("4C is the width of the two-matrix MLP; SwiGLU has three matrices, so it takes 2/3 of that.")
    if got == LLAMA_MULTIPLE_OF * math.floor(int(third) / LLAMA_MULTIPLE_OF):
        raise AssertionError("round up, not down: multiple_of * ceil(F / multiple_of).")
    raise AssertionError(f"start from int(2 * 4C / 3) with C = {LLAMA_DIM}, then round up to a multiple of {LLAMA_MULTIPLE_OF}.")


def _init_ratio(seed: int) -> float:
    torch.manual_seed(seed)
    C = INIT_DIM
    mlp, glu = MLP(C, 4 * C, activation="gelu", bias=False), SwiGLU(C, swiglu_hidden(C, 4))
    for p in [*mlp.parameters(), *glu.parameters()]:
        nn.init.normal_(p, std=INIT_STD)
    x = torch.randn(INIT_ROWS, C)
    with torch.no_grad():
        return (mlp(x).std() / glu(x).std()).item()


@exercise("normact.init_ratio")
def check_init_ratio(answer: Any) -> None:
    r"""std of a GELU MLP's output over std of a SwiGLU's, all weights :math:`\mathcal{N}(0, 0.02^2)`, input :math:`\mathcal{N}(0, 1)`."""
    got = require_number(answer, "the ratio std(MLP) / std(SwiGLU)")
    want = sum(_init_ratio(s) for s in range(5)) / 5  # a few weight draws; one draw varies by a few per cent
    if math.isclose(got, want, rel_tol=0.15):
        return
    if got <= 1:
        raise AssertionError("the gated unit's output is the smaller one: the ratio MLP / SwiGLU is above 1.")
    raise AssertionError(
        f"measure it: MLP({INIT_DIM}, {4 * INIT_DIM}, activation='gelu', bias=False) and "
        f"SwiGLU({INIT_DIM}, swiglu_hidden({INIT_DIM}, 4)), every weight nn.init.normal_(p, std={INIT_STD}), "
        f"x = torch.randn({INIT_ROWS}, {INIT_DIM}); ratio of the output stds. "
        "Why: the gate multiplies two small pre-activations, so SwiGLU is quadratic in the weight scale."
    )


def _invariances() -> dict[str, bool]:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(16, 32, generator=gen, dtype=torch.float64) * 10  # large: eps does not matter
    out = {}
    for name, norm in (("layernorm", LayerNorm(32).double()), ("rmsnorm", RMSNorm(32).double())):
        with torch.no_grad():
            y = norm(x)
            out[f"{name}_shift"] = bool(torch.allclose(norm(x + 3.0), y, atol=1e-6))
            out[f"{name}_scale"] = bool(torch.allclose(norm(x * 5.0), y, atol=1e-6))
    return out


@exercise("normact.invariances")
def check_invariances(answer: Any) -> None:
    r"""For LayerNorm and RMSNorm: is the output unchanged by a shift :math:`x + c` and by a scaling :math:`a x` (:math:`a > 0`)?"""
    if not isinstance(answer, dict) or set(answer) != set(INVARIANCES):
        raise AssertionError(f"give a dict with exactly the keys {list(INVARIANCES)}, each True or False.")
    if not all(isinstance(v, bool) for v in answer.values()):
        raise AssertionError("each value is True (the output does not change) or False.")
    want = _invariances()
    wrong = [k for k in INVARIANCES if answer[k] != want[k]]
    if not wrong:
        return
    hints = {
        "layernorm_shift": "LayerNorm subtracts the token's mean first: what does that do to x + c?",
        "layernorm_scale": "scaling x by a scales both x - mean and the standard deviation.",
        "rmsnorm_shift": "RMSNorm subtracts no mean: x + c has a different root mean square and a different direction.",
        "rmsnorm_scale": "scaling x by a scales the root mean square by a too.",
    }
    raise AssertionError(f"{len(wrong)} wrong: " + " ".join(f"{k}: {hints[k]}" for k in wrong))
