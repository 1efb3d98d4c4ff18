r"""Exercise checkers for chapter 2, "Autograd from scratch" (topic prefix ``autograd.``).

Every checker recomputes the answer independently: gradients with torch's autograd, never the
chapter's engine; the size of a graph with the package's scalar ``MLP`` and ``topological_order``.
A checker raises :class:`AssertionError` with a hint when the reader's answer differs. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..autograd.engine import Value, topological_order
from ..autograd.scalar_layers import MLP
from .answers import close, require_callable, require_number
from .core import exercise

__all__ = [
    "HAND_GRADIENT_INPUTS",
    "GRAPH_NARROW",
    "GRAPH_WIDE",
    "check_sigmoid",
    "check_hand_gradient",
    "check_graph_nodes",
    "graph_nodes",
    "check_relu_mlp_backward",
]

# autograd.hand_gradient: e = a * b; d = e + c; L = d * a at these inputs
HAND_GRADIENT_INPUTS = {"a": 2.0, "b": -3.0, "c": 10.0}
# autograd.graph_nodes: the graph of MLP(2, GRAPH_WIDE) on one point, against MLP(2, GRAPH_NARROW)
GRAPH_NARROW = (16, 16, 1)
GRAPH_WIDE = (32, 32, 1)


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
        if not close(out.data, s.item()):
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
        if not close(v.grad, want):
            sig = s.item()
            if close(v.grad, 4.0 * sig):
                hint = "the derivative of sigma(x) is sigma(x) * (1 - sigma(x)), not sigma(x)."
            elif close(v.grad, 4.0 * (1.0 - sig)):
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
        if close(g, w):
            continue
        if name == "dL/da" and close(g, d.item()):
            raise AssertionError(
                "dL/da: a is used twice (in e = a*b and in L = d*a). You have the direct path only; "
                "add the path through e and d, as in the multivariate chain rule."
            )
        if name == "dL/da" and close(g, (a * b).item()):
            raise AssertionError(
                "dL/da: a is used twice (in e = a*b and in L = d*a). You have the path through e "
                "only; add the direct path from L = d*a."
            )
        raise AssertionError(f"{name} is not {g:g}. Walk back from L: dL/dd = a, then dd/de = dd/dc = 1, then de/da = b.")


def graph_nodes(widths: tuple[int, ...], value_inputs: bool = True) -> int:
    r"""Nodes of the graph that one forward pass of ``MLP(widths[0], widths[1:])`` builds on one point.

    With ``value_inputs`` the point is two :class:`Value` leaves; otherwise plain floats, which the
    engine wraps in a new leaf at every use.
    """
    net = MLP(widths[0], list(widths[1:]), act="relu", rng=random.Random(0))
    x = [0.5] * widths[0]
    out = net([Value(v) for v in x] if value_inputs else x)[0]
    return len(topological_order(out))


@exercise("autograd.graph_nodes")
def check_graph_nodes(answer: Any) -> None:
    r"""The number of nodes that ``MLP(2, [32, 32, 1])`` builds for one point, as ``len(topological_order(out))``."""
    got = require_number(answer, "the number of nodes")
    wide, narrow = (2, *GRAPH_WIDE), (2, *GRAPH_NARROW)
    if got in (graph_nodes(wide), graph_nodes(wide, value_inputs=False)):
        return
    n_narrow = graph_nodes(narrow)
    n_params = len(MLP(wide[0], list(wide[1:])).parameters())
    if got in (graph_nodes(narrow), graph_nodes(narrow, value_inputs=False)):
        raise AssertionError(f"{got:g} is the graph of MLP(2, {list(GRAPH_NARROW)}); the exercise asks for hidden width 32.")
    if got == n_params:
        raise AssertionError(
            f"{n_params} is the number of parameters, only the leaves of the graph. Each weight also makes a "
            "multiply node and an add node: count len(topological_order(out))."
        )
    if got == 2 * n_narrow:
        raise AssertionError(
            "the graph grows faster than the width: the middle layer has 32 * 32 weights, four times 16 * 16, "
            "and each weight brings its own nodes."
        )
    if got == 4 * n_narrow:
        raise AssertionError(
            "only the middle layer grows four times; the first and the last layer grow twice, with the width."
        )
    raise AssertionError(
        f"measure it: out = MLP(2, {list(GRAPH_WIDE)}, act='relu')([Value(0.3), Value(-0.5)])[0], "
        "then len(topological_order(out))."
    )


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
