r"""Exercise checkers for chapter 6, "Deep neural networks" (topic prefix ``deepnets.``).

Every checker recomputes the answer with the package's tested code or torch (autograd through
:func:`~dlscratch.layers.softmax`, :class:`~dlscratch.layers.norms.BatchNorm1d`,
:class:`~dlscratch.layers.dropout.Dropout`, ``torch.optim.Adam``) and raises :class:`AssertionError`
with a hint when the reader's answer differs. The reference solutions live in the tests, not
here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..layers.activations import softmax
from ..layers.dropout import Dropout
from ..layers.norms import BatchNorm1d
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "BN_CHANNELS",
    "DROPOUT_P",
    "ADAM_LR",
    "TINY_GRAD",
    "check_softmax_jacobian",
    "check_bn_two_examples",
    "check_dropout_variance",
    "check_adam_tiny_grad",
    "bn_two_examples",
    "dropout_variance",
    "adam_first_step",
]

BN_CHANNELS = 64  # deepnets.bn_two_examples: BatchNorm1d(BN_CHANNELS) on batches of two
DROPOUT_P = 0.25  # deepnets.dropout_variance: inverted dropout with this p applied to a tensor of ones
ADAM_LR, TINY_GRAD = 1e-3, 1e-9  # deepnets.adam_tiny_grad: Adam's first step for a weight with this gradient


@exercise("deepnets.softmax_jacobian")
def check_softmax_jacobian(answer: Any) -> None:
    r"""``answer(z)`` for logits ``(N, K)`` returns the ``(N, K, K)`` Jacobians :math:`\partial p_{ni} / \partial z_{nj}` of the softmax,
    checked against autograd through the package's :func:`~dlscratch.layers.softmax`."""
    fn = require_callable(answer, "softmax_jacobian")
    gen = torch.Generator().manual_seed(6)
    for N, K in ((4, 3), (1, 10), (5, 1)):
        z = 2 * torch.randn(N, K, generator=gen, dtype=torch.float64)
        got = fn(z.clone())
        if not isinstance(got, torch.Tensor):
            raise AssertionError(f"return a tensor, got {type(got).__name__}.")
        if tuple(got.shape) != (N, K, K):
            raise AssertionError(f"for logits of shape ({N}, {K}) return one ({K}, {K}) Jacobian per row: ({N}, {K}, {K}), got {tuple(got.shape)}.")
        got = got.detach().to(torch.float64)
        want = torch.stack([torch.autograd.functional.jacobian(lambda r: softmax(r, dim=-1), row) for row in z])  # (N, K, K)
        if torch.allclose(got, want, atol=1e-10):
            continue
        p = softmax(z, dim=-1)
        if torch.allclose(got, torch.diag_embed(p), atol=1e-10):
            raise AssertionError("every p_i depends on every z_j through the normaliser: add the term - p_i * p_j.")
        if torch.allclose(got, -p[:, :, None] * p[:, None, :], atol=1e-10):
            raise AssertionError("the diagonal misses its own term: d p_i / d z_i = p_i (1 - p_i).")
        if torch.allclose(got, torch.diag_embed(p * (1 - p)), atol=1e-10):
            raise AssertionError("that is only the diagonal; off the diagonal d p_i / d z_j = - p_i p_j.")
        raise AssertionError(f"wrong Jacobian for logits of shape ({N}, {K}): d p_i / d z_j = p_i (delta_ij - p_j).")


def bn_two_examples(seed: int = 0) -> float:
    r"""The mean of :math:`|y|` of a fresh training-mode ``BatchNorm1d(BN_CHANNELS)`` on a random batch of two."""
    torch.manual_seed(seed)
    bn = BatchNorm1d(BN_CHANNELS)
    with torch.no_grad():
        return bn(10 * torch.randn(2, BN_CHANNELS)).abs().mean().item()


@exercise("deepnets.bn_two_examples")
def check_bn_two_examples(answer: Any) -> None:
    r"""The mean absolute output of batch norm in training mode on a batch of two examples (gain 1, shift 0)."""
    got = require_number(answer, "the mean of |y|")
    want = bn_two_examples()
    if math.isclose(got, want, abs_tol=0.01):  # a draw with two nearly equal inputs in a channel lowers it a little
        return
    if math.isclose(got, math.sqrt(2 / math.pi), abs_tol=0.02):
        raise AssertionError(
            "sqrt(2 / pi) is the mean |y| of a standard normal, what a large batch gives. With two examples the "
            "mean sits half-way between them: what is each one's distance to it, in standard deviations?"
        )
    if abs(got) < 1e-3:
        raise AssertionError("the batch mean of y is 0, but not y itself: measure the mean of |y|.")
    raise AssertionError(
        f"measure it: BatchNorm1d({BN_CHANNELS}) in training mode on 10 * torch.randn(2, {BN_CHANNELS}), "
        "then y.abs().mean()."
    )


def dropout_variance(n: int = 1_000_000, seed: int = 0) -> float:
    r"""The variance of the package's ``Dropout(DROPOUT_P)`` in training mode on ``n`` ones."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return Dropout(DROPOUT_P).train()(torch.ones(n)).var().item()


@exercise("deepnets.dropout_variance")
def check_dropout_variance(answer: Any) -> None:
    r"""The variance of inverted dropout with ``p = DROPOUT_P`` applied to a tensor of ones."""
    got = require_number(answer, "the variance")
    p = DROPOUT_P
    if math.isclose(got, dropout_variance(), rel_tol=0.02):
        return
    if math.isclose(got, p * (1 - p), rel_tol=0.02):
        raise AssertionError("that is the variance of the Bernoulli mask; the kept values are also scaled by 1/(1 - p).")
    if math.isclose(got, 1.0, rel_tol=0.02):
        raise AssertionError("that is the mean (dropout preserves it); the question asks for the variance.")
    if got == 0:
        raise AssertionError("in evaluation mode dropout is the identity; measure in training mode.")
    raise AssertionError("the output is 0 with probability p and 1/(1 - p) otherwise: compute E[y^2] - E[y]^2, or measure it.")


def adam_first_step(grad: float = TINY_GRAD, lr: float = ADAM_LR) -> float:
    r"""How far one step of ``torch.optim.Adam`` (default betas and eps) moves a weight whose gradient is ``grad``."""
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    w.grad = torch.full_like(w, grad)
    opt.step()
    return w.detach().abs().item()


@exercise("deepnets.adam_tiny_grad")
def check_adam_tiny_grad(answer: Any) -> None:
    r"""The size of Adam's first step (``lr = 1e-3``) for a weight whose gradient is ``1e-9``."""
    got = require_number(answer, "the size of the step")
    want = adam_first_step()
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if math.isclose(got, ADAM_LR, rel_tol=0.01):
        raise AssertionError(
            "the chapter's rule of thumb, a first step of about lr, assumes |g| >> eps. Here the gradient is "
            "smaller than Adam's eps = 1e-8: look at the denominator of eq. (adam)."
        )
    if math.isclose(got, ADAM_LR * TINY_GRAD, rel_tol=0.01):
        raise AssertionError("that is the SGD step lr * g; Adam divides by sqrt(v_hat) + eps first.")
    raise AssertionError(
        "measure it: a one-element parameter, torch.optim.Adam([w], lr=1e-3), w.grad set to 1e-9, one step; "
        "give |w_after - w_before|."
    )
