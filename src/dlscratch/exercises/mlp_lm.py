r"""Exercise checkers for chapter 4, "MLP language model" (topic prefix ``mlp.``).

Every checker recomputes the answer with the package's tested code (the layer classes of
:mod:`dlscratch.layers.mini_nn`, :class:`~dlscratch.models.MLPLM`, the shared
:func:`~dlscratch.data.build_examples`) and raises :class:`AssertionError` with a hint when the
reader's answer differs. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F

from ..layers.mini_nn import BatchNorm1d, Linear
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "FOLD_EPS",
    "WEIGHT_SCALE",
    "check_fold_batchnorm",
    "check_bn_weight_scale",
    "check_unigram_init",
    "bn_weight_scale_ratio",
    "unigram_init_loss",
]

FOLD_EPS = 0.05  # mlp.fold_batchnorm: a large eps, so that forgetting it shows
WEIGHT_SCALE = 10.0  # mlp.bn_weight_scale: the hidden weights are multiplied by this


def _fold_case(gen: torch.Generator, fan_in: int, H: int) -> tuple[torch.Tensor, ...]:
    W1 = torch.randn(fan_in, H, generator=gen, dtype=torch.float64)
    gamma = 1 + 0.5 * torch.randn(H, generator=gen, dtype=torch.float64)
    beta = torch.randn(H, generator=gen, dtype=torch.float64)
    mean = 2 * torch.randn(H, generator=gen, dtype=torch.float64)
    var = 0.05 + torch.rand(H, generator=gen, dtype=torch.float64)  # small variances: eps matters
    return W1, gamma, beta, mean, var


def _bn_eval(x: torch.Tensor, W1: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    lin = Linear(W1.shape[0], W1.shape[1], bias=False, dtype=torch.float64)
    bn = BatchNorm1d(W1.shape[1], eps=FOLD_EPS, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(W1)
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
    bn.running_mean, bn.running_var = mean.clone(), var.clone()
    bn.eval()
    with torch.no_grad():
        return bn(lin(x))


@exercise("mlp.fold_batchnorm")
def check_fold_batchnorm(answer: Any) -> None:
    r"""``answer(W1, gamma, beta, running_mean, running_var, eps)`` returns ``(W, b)`` with ``x @ W + b`` equal to
    the package's ``BatchNorm1d`` in evaluation mode applied to ``x @ W1``."""
    fn = require_callable(answer, "fold_batchnorm")
    gen = torch.Generator().manual_seed(4)
    for fan_in, H in ((30, 7), (5, 12), (1, 1)):
        W1, gamma, beta, mean, var = _fold_case(gen, fan_in, H)
        got = fn(W1.clone(), gamma.clone(), beta.clone(), mean.clone(), var.clone(), FOLD_EPS)
        if not isinstance(got, (tuple, list)) or len(got) != 2 or not all(isinstance(t, torch.Tensor) for t in got):
            raise AssertionError("return a tuple of two tensors (W, b).")
        W, b = (t.detach().to(torch.float64) for t in got)
        if tuple(W.shape) != (fan_in, H) or tuple(b.shape) != (H,):
            raise AssertionError(
                f"W replaces W1 and keeps its shape ({fan_in}, {H}); b has one entry per unit, ({H},). "
                f"Got {tuple(W.shape)} and {tuple(b.shape)}: scale the columns of W1 (one per unit), not its rows."
            )
        x = torch.randn(16, fan_in, generator=gen, dtype=torch.float64)
        want = _bn_eval(x, W1, gamma, beta, mean, var)
        if torch.allclose(x @ W + b, want, atol=1e-9):
            continue
        s = gamma / (var + FOLD_EPS).sqrt()
        if torch.allclose(W, W1 * s, atol=1e-9):
            raise AssertionError("W is right; b is not: the running mean is subtracted before the gain, so b = beta - s * mean.")
        if torch.allclose(W, W1 * gamma / var.sqrt(), atol=1e-9):
            raise AssertionError("add eps to the running variance before the square root, as the layer does.")
        if torch.allclose(W, W1 * gamma / (var + FOLD_EPS), atol=1e-9):
            raise AssertionError("divide by the standard deviation sqrt(var + eps), not by the variance.")
        raise AssertionError(
            "in evaluation mode the layer computes gamma * (x @ W1 - mean) / sqrt(var + eps) + beta, an affine "
            "function of x: collect the factor of x into W and the rest into b."
        )


def bn_weight_scale_ratio(seed: int = 0, batch: int = 64) -> float:
    r"""``|dW1|`` after multiplying the hidden weights of a batch-norm ``MLPLM`` by :data:`WEIGHT_SCALE`, over ``|dW1|`` before."""
    from ..models.mlp_lm import MLPLM, MLPLMConfig

    torch.manual_seed(seed)
    model = MLPLM(MLPLMConfig(), dtype=torch.float64)
    hidden = model.layers[2]
    x, y = torch.randint(0, 27, (batch, 3)), torch.randint(0, 27, (batch,))
    norms = []
    for _ in range(2):
        for p in model.parameters():
            p.grad = None
        F.cross_entropy(model(x), y).backward()
        norms.append(hidden.weight.grad.norm().item())
        with torch.no_grad():
            hidden.weight *= WEIGHT_SCALE
    return norms[1] / norms[0]


@exercise("mlp.bn_weight_scale")
def check_bn_weight_scale(answer: Any) -> None:
    r"""How the gradient norm of the hidden weights changes when those weights, followed by batch norm, are scaled by 10."""
    got = require_number(answer, "the ratio of the gradient norms")
    want = bn_weight_scale_ratio()
    if math.isclose(got, want, rel_tol=0.01):
        return
    if math.isclose(got, 1.0, rel_tol=0.05):
        raise AssertionError(
            "the loss does not change, but its slope does: the loss is the same all along the ray a * W1, "
            "so near 10 * W1 a step of a given size changes the direction of W1 ten times less."
        )
    if math.isclose(got, WEIGHT_SCALE, rel_tol=0.05):
        raise AssertionError("a Linear's weight gradient scales with its input, not its weights; here the scale of W1 is divided away by batch norm.")
    if math.isclose(got, WEIGHT_SCALE**-2, rel_tol=0.05):
        raise AssertionError("one factor 1/10, not two: the batch-norm output is a function of W1 / |W1| only.")
    raise AssertionError(
        "measure it: the norm of W1's gradient on one batch, then again after W1 *= 10 (same batch, training mode); "
        "give the second over the first."
    )


@functools.cache  # builds the training examples of the names: once per session
def unigram_init_loss() -> float:
    r"""Mean cross-entropy on the training examples when every logit row is the log of the next-character frequencies."""
    from ..data import build_examples, names_split

    _, Y = build_examples(names_split().train, 3)
    logp = (torch.bincount(Y, minlength=27).double() / len(Y)).log()  # (V,)
    return F.cross_entropy(logp.expand(len(Y), -1), Y).item()


@exercise("mlp.unigram_init")
def check_unigram_init(answer: Any) -> None:
    r"""The training loss at initialisation when ``W2 = 0`` and ``b2`` is the log of the next-character frequencies."""
    got = require_number(answer, "the loss at initialisation")
    want = unigram_init_loss()
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if math.isclose(got, math.log(27), rel_tol=1e-3):
        raise AssertionError("log 27 is the loss of equal logits. These logits are not equal: common characters start ahead.")
    if got < 2.5:
        raise AssertionError(
            "that is below what a model that ignores its context can reach: with W2 = 0 every example gets the same "
            "distribution, the frequencies themselves. Even the bigram model, which sees one character, is at 2.45."
        )
    raise AssertionError(
        "measure it: b2 = log(torch.bincount(Ytr, minlength=27) / len(Ytr)), logits b2 for every example, "
        "F.cross_entropy against Ytr."
    )
