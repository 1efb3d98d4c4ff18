r"""Exercise checkers for chapter 6, "Deep neural networks".

Every checker recomputes the answer independently (with autograd, torch's functional batch norm
or the model itself) and raises :class:`AssertionError` with a hint when the reader's answer
differs. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..models.mlp_classifier import MLPClassifier, MLPClassifierConfig
from .answers import require_number
from .core import exercise

__all__ = [
    "DROPOUT_P",
    "PARAM_COUNT_CONFIG",
    "check_ce_grad",
    "check_batchnorm_train",
    "check_dropout_variance",
    "check_param_count",
]

# deepnets.dropout_variance: inverted dropout with this p applied to a tensor of ones
DROPOUT_P = 0.25
# deepnets.param_count: the classifier whose trainable parameters are counted
PARAM_COUNT_CONFIG = MLPClassifierConfig(in_shape=(1, 8, 8), n_classes=10, hidden=32, depth=2, batch_norm=True)


def _call(fn: Callable[..., Any], *args: Any) -> torch.Tensor:
    if not callable(fn):
        raise AssertionError(f"pass your function itself, not {fn!r}.")
    out = fn(*args)
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"return a tensor, got {type(out).__name__}.")
    return out


@exercise("deepnets.ce_grad")
def check_ce_grad(answer: Any) -> None:
    r"""``ce_grad(logits, target)``: the gradient of the mean cross-entropy with respect to the logits."""
    gen = torch.Generator().manual_seed(0)
    for N, K in [(5, 3), (1, 10), (16, 7)]:
        logits = torch.randn(N, K, generator=gen, dtype=torch.float64) * 2
        target = torch.randint(0, K, (N,), generator=gen)
        z = logits.clone().requires_grad_()
        F.cross_entropy(z, target).backward()
        want = z.grad
        got = _call(answer, logits.clone(), target.clone())
        if got.shape != want.shape:
            raise AssertionError(f"for logits of shape {(N, K)} the gradient has the same shape, got {tuple(got.shape)}.")
        got = got.to(torch.float64)
        if torch.allclose(got, want, atol=1e-8):
            continue
        if torch.allclose(got / N, want, atol=1e-8):
            raise AssertionError("off by a factor N: the loss is the *mean* over the batch, so divide by the batch size.")
        if torch.allclose(got, -want, atol=1e-8):
            raise AssertionError("wrong sign: the gradient is softmax(z) minus the one-hot target, not the reverse.")
        if torch.allclose(got, torch.softmax(logits, -1) / N, atol=1e-8):
            raise AssertionError("you left out the target: subtract 1 at the true class of each row.")
        raise AssertionError(f"wrong values for a batch of {N} with {K} classes; use eq. (grad): (softmax(z) - onehot(y)) / N.")


@exercise("deepnets.batchnorm_train")
def check_batchnorm_train(answer: Any) -> None:
    r"""``batchnorm_train(x, weight, bias, eps)``: batch norm of ``(N, C)`` with batch statistics."""
    gen = torch.Generator().manual_seed(1)
    for N, C, eps in [(8, 3, 1e-5), (2, 5, 1e-5), (64, 1, 0.1)]:
        x = torch.randn(N, C, generator=gen, dtype=torch.float64) * 3 + 2
        weight = torch.rand(C, generator=gen, dtype=torch.float64) + 0.5
        bias = torch.randn(C, generator=gen, dtype=torch.float64)
        want = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
        got = _call(answer, x.clone(), weight.clone(), bias.clone(), eps)
        if got.shape != want.shape:
            raise AssertionError(f"the output has the input's shape {(N, C)}, got {tuple(got.shape)}.")
        got = got.to(torch.float64)
        if torch.allclose(got, want, atol=1e-8):
            continue
        unbiased = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=True) + eps) * weight + bias
        if torch.allclose(got, unbiased, atol=1e-8):
            raise AssertionError("normalise with the biased variance (divide by N, not N - 1), as batch norm does in training.")
        wrong_dim = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + eps) * weight + bias
        if torch.allclose(got, wrong_dim, atol=1e-8):
            raise AssertionError("you normalised each example over its features (that is layer norm); average over the batch, dim 0.")
        raise AssertionError(f"wrong values for N={N}, C={C}, eps={eps}: check eq. (bn), and apply weight and bias after normalising.")


@exercise("deepnets.dropout_variance")
def check_dropout_variance(answer: Any) -> None:
    r"""The variance of inverted dropout with ``p = DROPOUT_P`` applied to a tensor of ones."""
    got = require_number(answer, "the variance")
    p = DROPOUT_P
    values = torch.tensor([0.0, 1.0 / (1.0 - p)], dtype=torch.float64)  # the two outcomes
    probs = torch.tensor([p, 1.0 - p], dtype=torch.float64)
    mean = (probs * values).sum()
    want = (probs * (values - mean) ** 2).sum().item()
    if abs(got - want) < 1e-6:
        return
    if abs(got - p * (1 - p)) < 1e-6:
        raise AssertionError("that is the variance of the Bernoulli mask; the kept values are also scaled by 1/(1 - p).")
    if abs(got - mean.item()) < 1e-6:
        raise AssertionError("that is the mean (dropout preserves it); the question asks for the variance.")
    raise AssertionError("the output is 0 with probability p and 1/(1 - p) otherwise; compute E[y^2] - E[y]^2.")


@exercise("deepnets.param_count")
def check_param_count(answer: Any) -> None:
    r"""The number of trainable parameters of ``MLPClassifier(PARAM_COUNT_CONFIG)``."""
    got = require_number(answer, "the parameter count")
    model = MLPClassifier(PARAM_COUNT_CONFIG)
    want = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if got == want:
        return
    c = PARAM_COUNT_CONFIG
    hidden_biases = c.depth * c.hidden
    bn = 2 * c.depth * c.hidden
    if got == want + hidden_biases:
        raise AssertionError("close: with batch norm the hidden Linear layers have no bias (BN's beta replaces it).")
    if got == want - bn:
        raise AssertionError("close: each BatchNorm1d layer has trainable weight (gamma) and bias (beta) vectors too.")
    if got == want + bn:
        raise AssertionError("the running mean and variance are buffers, not trainable parameters.")
    raise AssertionError("count layer by layer: Linear(64, 32) without bias, BN(32), Linear(32, 32) without bias, BN(32), Linear(32, 10).")
