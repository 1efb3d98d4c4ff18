r"""Exercise checkers for chapter 2, "Autograd from scratch" (topic prefix ``autograd.``).

Every checker recomputes the answer independently (with torch's autograd and ``torch.nn``, never
the chapter's engine) and raises :class:`AssertionError` with a hint when the reader's answer
differs. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..autograd.engine import Value
from .answers import require_callable
from .core import exercise

__all__ = [
    "HAND_GRADIENT_INPUTS",
    "PARAM_COUNT_NIN",
    "PARAM_COUNT_NOUTS",
    "check_sigmoid",
    "check_hand_gradient",
    "check_param_count",
    "check_relu_mlp_backward",
]

# autograd.hand_gradient: e = a * b; d = e + c; L = d * a at these inputs
HAND_GRADIENT_INPUTS = {"a": 2.0, "b": -3.0, "c": 10.0}
# autograd.param_count: the parameters of MLP(PARAM_COUNT_NIN, PARAM_COUNT_NOUTS)
PARAM_COUNT_NIN = 3
PARAM_COUNT_NOUTS = (4, 4, 1)


def _close(a: float, b: float, tol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


@exercise("autograd.sigmoid")
def check_sigmoid(answer: Any) -> None:
    r"""``answer(v)`` returns one new :class:`Value` node holding :math:`\sigma(v)` and its local derivative."""
    require_callable(answer, "sigmoid")
    for x in (0.7, -2.0, 0.0, 3.5, -30.0):
        v = Value(x)
        out = answer(v)
        if not isinstance(out, Value):
            raise AssertionError(f"sigmoid(Value({x})) should return a Value, got {type(out).__name__}.")
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        s = torch.sigmoid(t)
        if not _close(out.data, s.item()):
            raise AssertionError(
                f"sigmoid(Value({x})).data is {out.data:.6g}, expected {s.item():.6g}: "
                "the forward value is 1 / (1 + exp(-x))."
            )
        if out._prev != (v,):
            raise AssertionError(
                "build sigmoid as a single new node whose only child is v, like tanh in the engine: "
                "Value(s, (v,), 'sigmoid', (local_derivative,)). Composing exp, + and / also works, "
                "but the exercise is to derive the local derivative yourself."
            )
        # use the node twice, so a wrong accumulation shows up as well
        v.grad = 0.0
        y = answer(v) * 3.0 + answer(v)
        y.backward()
        (s * 3.0 + s).backward()
        want = t.grad.item()
        if not _close(v.grad, want):
            sig = s.item()
            if _close(v.grad, 4.0 * sig):
                hint = "the derivative of sigma(x) is sigma(x) * (1 - sigma(x)), not sigma(x)."
            elif _close(v.grad, 4.0 * (1.0 - sig)):
                hint = "the derivative of sigma(x) is sigma(x) * (1 - sigma(x)), not 1 - sigma(x)."
            else:
                hint = "differentiate 1 / (1 + exp(-x)) and write the result in terms of s = sigma(x)."
            raise AssertionError(f"for x = {x}, the gradient is {v.grad:.6g}, expected {want:.6g}: {hint}")


@exercise("autograd.hand_gradient")
def check_hand_gradient(answer: Any) -> None:
    r"""``(dL/da, dL/db, dL/dc)`` for ``e = a*b; d = e + c; L = d*a``."""
    try:
        got = [float(g) for g in answer]
    except (TypeError, ValueError) as err:
        raise AssertionError(f"give three numbers (dL/da, dL/db, dL/dc), got {answer!r}.") from err
    if len(got) != 3:
        raise AssertionError(f"give three numbers (dL/da, dL/db, dL/dc), got {len(got)}.")
    a, b, c = (torch.tensor(HAND_GRADIENT_INPUTS[k], dtype=torch.float64, requires_grad=True) for k in "abc")
    d = a * b + c
    (d * a).backward()
    want = [a.grad.item(), b.grad.item(), c.grad.item()]
    names = ("dL/da", "dL/db", "dL/dc")
    for name, g, w in zip(names, got, want):
        if _close(g, w):
            continue
        if name == "dL/da" and _close(g, d.item()):
            raise AssertionError(
                "dL/da: a is used twice (in e = a*b and in L = d*a). You have the direct path only; "
                "add the path through e and d, as in the multivariate chain rule."
            )
        if name == "dL/da" and _close(g, (a * b).item()):
            raise AssertionError(
                "dL/da: a is used twice (in e = a*b and in L = d*a). You have the path through e "
                "only; add the direct path from L = d*a."
            )
        raise AssertionError(f"{name} is not {g:g}. Walk back from L: dL/dd = a, then dd/de = dd/dc = 1, then de/da = b.")


@exercise("autograd.param_count")
def check_param_count(answer: Any) -> None:
    r"""The number of parameters of ``MLP(3, [4, 4, 1])``."""
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise AssertionError(f"give the count as an int, got {answer!r}.")
    sizes = [PARAM_COUNT_NIN, *PARAM_COUNT_NOUTS]
    layers = [nn.Linear(sizes[i], sizes[i + 1]) for i in range(len(sizes) - 1)]
    want = sum(p.numel() for layer in layers for p in layer.parameters())
    weights_only = sum(layer.weight.numel() for layer in layers)
    if answer == weights_only:
        raise AssertionError("you counted the weights; every neuron also has a bias.")
    if answer != want:
        raise AssertionError("each neuron of a layer with n_in inputs has n_in weights and one bias; add up all layers.")


def _relu_mlp_reference(
    X: torch.Tensor, W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, y: torch.Tensor
) -> list[torch.Tensor]:
    params = [p.detach().clone().requires_grad_() for p in (W1, b1, W2, b2)]
    logits = F.relu(X @ params[0] + params[1]) @ params[2] + params[3]  # (N, D) @ (D, H) @ (H, K)
    F.cross_entropy(logits, y).backward()
    return [p.grad for p in params]


@exercise("autograd.relu_mlp_backward")
def check_relu_mlp_backward(answer: Any) -> None:
    r"""``answer(X, W1, b1, W2, b2, y)`` returns ``(dW1, db1, dW2, db2)`` of the mean cross-entropy.

    The network is ``Z = relu(X @ W1 + b1) @ W2 + b2`` with weights stored ``(fan_in, fan_out)``.
    """
    require_callable(answer, "relu_mlp_backward")
    fn: Callable[..., Any] = answer
    gen = torch.Generator().manual_seed(0)
    N, D, H, K = 7, 3, 5, 4
    args = (
        torch.randn(N, D, generator=gen, dtype=torch.float64),
        torch.randn(D, H, generator=gen, dtype=torch.float64),
        torch.randn(H, generator=gen, dtype=torch.float64),
        torch.randn(H, K, generator=gen, dtype=torch.float64),
        torch.randn(K, generator=gen, dtype=torch.float64),
        torch.randint(0, K, (N,), generator=gen),
    )
    want = _relu_mlp_reference(*args)
    got = fn(*(a.clone() for a in args))
    if not isinstance(got, (tuple, list)) or len(got) != 4:
        raise AssertionError("return a tuple of four tensors (dW1, db1, dW2, db2).")
    names = ("dW1", "db1", "dW2", "db2")
    for name, g, w in zip(names, got, want):
        if not isinstance(g, torch.Tensor) or g.shape != w.shape:
            shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
            raise AssertionError(f"{name} should have the shape of its parameter, {tuple(w.shape)}, got {shape}.")
    for name, g, w in zip(names, got, want):
        g = g.detach().to(torch.float64)
        if torch.allclose(g, w, rtol=1e-7, atol=1e-9):
            continue
        if torch.allclose(g, N * w, rtol=1e-7, atol=1e-9):
            raise AssertionError(f"{name} is N times too large: the loss is the mean over the N rows, so dZ has a 1/N.")
        if name in ("dW1", "db1"):
            raise AssertionError(
                f"{name} is wrong while the output layer may be right: the local derivative of relu is 1 "
                "where the pre-activation is positive and 0 elsewhere (not 1 - h^2, that is tanh)."
            )
        raise AssertionError(f"{name} is wrong: start from dZ = (softmax(Z) - onehot(y)) / N and follow the equations.")
