r"""Exercise checkers for chapter 4, "MLP language model" (topic prefix ``mlp.``).

Every checker recomputes the answer independently (torch's own layers, autograd, ``math``) and
raises :class:`AssertionError` with a hint when the reader's answer differs. The reference
solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .answers import require_callable, require_number
from .core import NotAttempted, exercise

__all__ = [
    "EX_VOCAB",
    "EX_BLOCK",
    "EX_EMBD",
    "EX_HIDDEN",
    "check_kaiming_std",
    "check_param_count",
    "check_bn_backward",
    "check_ce_grad",
]

# mlp.kaiming_std and mlp.param_count: an MLP language model with these sizes (batch norm on)
EX_VOCAB = 27
EX_BLOCK = 4
EX_EMBD = 12
EX_HIDDEN = 150


@exercise("mlp.kaiming_std")
def check_kaiming_std(answer: Any) -> None:
    r"""Standard deviation of the hidden Linear's weights (Kaiming init for tanh) for ``EX_BLOCK x EX_EMBD`` inputs."""
    got = require_number(answer, "the standard deviation")
    fan_in = EX_BLOCK * EX_EMBD
    want = nn.init.calculate_gain("tanh") / math.sqrt(fan_in)
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if math.isclose(got, 1 / math.sqrt(fan_in), rel_tol=1e-3):
        raise AssertionError("that is the linear-layer scale 1/sqrt(fan_in); a tanh follows, so multiply by its gain.")
    if math.isclose(got, want**2, rel_tol=1e-3):
        raise AssertionError("that is the variance; the question asks for the standard deviation.")
    if math.isclose(got, nn.init.calculate_gain("tanh") / math.sqrt(EX_HIDDEN), rel_tol=1e-3):
        raise AssertionError("fan_in counts the inputs of the layer, not its outputs.")
    raise AssertionError(
        f"the layer sees block_size x n_embd = {EX_BLOCK} x {EX_EMBD} inputs; std = gain / sqrt(fan_in), "
        "with the tanh gain of the chapter."
    )


@exercise("mlp.param_count")
def check_param_count(answer: Any) -> None:
    r"""Trainable parameters of the batch-norm MLP LM with ``EX_*`` sizes (hidden Linear without bias)."""
    got = require_number(answer, "the parameter count")
    parts = {
        "embedding": nn.Embedding(EX_VOCAB, EX_EMBD),
        "hidden": nn.Linear(EX_BLOCK * EX_EMBD, EX_HIDDEN, bias=False),
        "batch norm": nn.BatchNorm1d(EX_HIDDEN),
        "output": nn.Linear(EX_HIDDEN, EX_VOCAB),
    }
    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
    want = sum(counts.values())
    if got == want:
        return
    if got == want + EX_HIDDEN:
        raise AssertionError("the hidden Linear has no bias: batch norm subtracts the mean, so beta replaces it.")
    if got == want - counts["batch norm"]:
        raise AssertionError("batch norm has trainable parameters too: a gain and a bias per channel.")
    if got == want - counts["embedding"]:
        raise AssertionError("the embedding table is trained as well: count it.")
    if got == want - EX_VOCAB:
        raise AssertionError("the output layer keeps its bias.")
    raise AssertionError("add up table (V x E), hidden weights (T*E x H), batch norm (2H) and output layer (H x V + V).")


def _bn_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    x = 2.0 + 3.0 * torch.randn(16, 5, generator=g, dtype=torch.float64)
    gamma = torch.rand(5, generator=g, dtype=torch.float64) + 0.5
    return x, gamma


@exercise("mlp.bn_backward")
def check_bn_backward(answer: Any) -> None:
    r"""``answer(dout, x, gamma, eps)`` → ``(dx, dgamma, dbeta)`` of training-mode batch norm."""
    fn = require_callable(answer, "bn_backward")
    x, gamma = _bn_inputs()
    beta = torch.randn(5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    dout = torch.randn(16, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    xl, gl, bl = (t.clone().requires_grad_() for t in (x, gamma, beta))
    (F.batch_norm(xl, None, None, gl, bl, training=True, eps=1e-5) * dout).sum().backward()
    got = fn(dout.clone(), x.clone(), gamma.clone(), 1e-5)
    if got is None or not isinstance(got, (tuple, list)) or len(got) != 3:
        raise AssertionError("return the three gradients as a tuple (dx, dgamma, dbeta).")
    dx, dgamma, dbeta = (torch.as_tensor(t, dtype=torch.float64) for t in got)
    if not torch.allclose(dbeta, bl.grad, atol=1e-8):
        raise AssertionError("dbeta is wrong: beta is added to every row, so its gradient is the column sum of dout.")
    if not torch.allclose(dgamma, gl.grad, atol=1e-8):
        raise AssertionError("dgamma is wrong: it is the column sum of dout times the normalised input xhat.")
    if torch.allclose(dx, xl.grad, atol=1e-8):
        return
    inv_std = (x.var(0, unbiased=False) + 1e-5) ** -0.5
    if torch.allclose(dx, gamma * inv_std * dout, atol=1e-8):
        raise AssertionError("you treated the mean and the variance as constants: both depend on x too.")
    raise AssertionError("dx is wrong: dx = gamma * s / N * (N * dout - dout.sum(0) - xhat * (dout * xhat).sum(0)).")


@exercise("mlp.ce_grad")
def check_ce_grad(answer: Any) -> None:
    r"""``answer(logits, targets)`` → the gradient of the *mean* cross-entropy with respect to the logits."""
    fn = require_callable(answer, "cross_entropy_grad")
    g = torch.Generator().manual_seed(7)
    logits = 3.0 * torch.randn(12, 6, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 6, (12,), generator=g)
    leaf = logits.clone().requires_grad_()
    F.cross_entropy(leaf, targets).backward()
    got = fn(logits.clone(), targets.clone())
    if got is None:
        raise NotAttempted
    got = torch.as_tensor(got, dtype=torch.float64)
    if tuple(got.shape) != (12, 6):
        raise AssertionError(f"the gradient has the shape of the logits (12, 6), got {tuple(got.shape)}.")
    if torch.allclose(got, leaf.grad, atol=1e-10):
        return
    if torch.allclose(got, 12 * leaf.grad, atol=1e-8):
        raise AssertionError("the loss is a mean over the batch: divide by N.")
    if torch.allclose(got, torch.softmax(logits, 1) / 12, atol=1e-8):
        raise AssertionError("subtract 1 at each row's target column (the one-hot term).")
    raise AssertionError("the gradient is (softmax(logits) - one_hot(targets)) / N.")
