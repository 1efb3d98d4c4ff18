"""Checkers of the chapter 2 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from dlscratch.autograd import MLP, Value, topological_order
from dlscratch.exercises import core
from dlscratch.exercises.autograd import HAND_GRADIENT_INPUTS

from .grading import assert_correct, assert_grades, assert_hint, assert_rejected


@pytest.fixture(autouse=True)
def _only_autograd(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("autograd",))


# ----- autograd.sigmoid ---------------------------------------------------------------------------


def sigmoid_solution(v: Value) -> Value:
    s = 1.0 / (1.0 + math.exp(-v.data))
    return Value(s, (v,), "sigmoid", (s * (1.0 - s),))


def sigmoid_forgets_one_minus(v: Value) -> Value:
    s = 1.0 / (1.0 + math.exp(-v.data))
    return Value(s, (v,), "sigmoid", (s,))


def sigmoid_composed(v: Value) -> Value:
    return 1.0 / (1.0 + (-v).exp())


def sigmoid_wrong_forward(v: Value) -> Value:
    s = 1.0 / (1.0 + math.exp(v.data))
    return Value(s, (v,), "sigmoid", (s * (1.0 - s),))


def sigmoid_returns_float(v: Value) -> float:
    return 1.0 / (1.0 + math.exp(-v.data))


def sigmoid_todo(v: Value) -> Value:
    raise NotImplementedError


# ----- autograd.relu_mlp_backward -----------------------------------------------------------------


def relu_mlp_backward_solution(X, W1, b1, W2, b2, y):  # type: ignore[no-untyped-def]
    N = X.shape[0]
    A = X @ W1 + b1  # (N, H) pre-activation
    H = A.clamp_min(0.0)  # relu
    Z = H @ W2 + b2  # (N, K)
    dZ = torch.softmax(Z, dim=1)
    dZ[torch.arange(N), y] -= 1.0
    dZ /= N
    dW2, db2 = H.T @ dZ, dZ.sum(0)
    dA = (dZ @ W2.T) * (A > 0)
    return X.T @ dA, dA.sum(0), dW2, db2


def relu_mlp_backward_tanh_derivative(X, W1, b1, W2, b2, y):  # type: ignore[no-untyped-def]
    N = X.shape[0]
    H = (X @ W1 + b1).clamp_min(0.0)
    dZ = torch.softmax(H @ W2 + b2, dim=1)
    dZ[torch.arange(N), y] -= 1.0
    dZ /= N
    dA = (dZ @ W2.T) * (1 - H**2)
    return X.T @ dA, dA.sum(0), H.T @ dZ, dZ.sum(0)


def relu_mlp_backward_sum_not_mean(X, W1, b1, W2, b2, y):  # type: ignore[no-untyped-def]
    return tuple(g * X.shape[0] for g in relu_mlp_backward_solution(X, W1, b1, W2, b2, y))


def relu_mlp_backward_transposed(X, W1, b1, W2, b2, y):  # type: ignore[no-untyped-def]
    dW1, db1, dW2, db2 = relu_mlp_backward_solution(X, W1, b1, W2, b2, y)
    return dW1.T, db1, dW2.T, db2


def relu_mlp_backward_todo(X, W1, b1, W2, b2, y):  # type: ignore[no-untyped-def]
    raise NotImplementedError


# e = a*b; d = e + c; L = d*a  ->  dL/da = d + a*b, dL/db = a^2, dL/dc = a
_a, _b, _c = HAND_GRADIENT_INPUTS["a"], HAND_GRADIENT_INPUTS["b"], HAND_GRADIENT_INPUTS["c"]
HAND_GRADIENT = ((_a * _b + _c) + _a * _b, _a * _a, _a)


def graph_nodes(widths: list[int], point: list) -> int:  # the measurement the exercise asks for
    return len(topological_order(MLP(2, widths, act="relu")(point)[0]))


GRAPH_NODES = graph_nodes([32, 32, 1], [Value(0.3), Value(-0.5)])

CORRECT: list[tuple[str, Any]] = [
    ("autograd.sigmoid", sigmoid_solution),
    ("autograd.hand_gradient", HAND_GRADIENT),
    ("autograd.hand_gradient", list(HAND_GRADIENT)),
    ("autograd.graph_nodes", GRAPH_NODES),
    ("autograd.graph_nodes", graph_nodes([32, 32, 1], [0.3, -0.5])),  # float inputs: a leaf per use, also right
    ("autograd.relu_mlp_backward", relu_mlp_backward_solution),
]

WRONG: list[tuple[str, Any]] = [
    ("autograd.sigmoid", sigmoid_forgets_one_minus),
    ("autograd.sigmoid", sigmoid_composed),
    ("autograd.sigmoid", sigmoid_wrong_forward),
    ("autograd.sigmoid", sigmoid_returns_float),
    ("autograd.sigmoid", sigmoid_todo),
    ("autograd.sigmoid", 0.5),
    ("autograd.sigmoid", ...),
    ("autograd.hand_gradient", (_a * _b + _c, _a * _a, _a)),  # direct path only
    ("autograd.hand_gradient", (_a * _b, _a * _a, _a)),  # path through e only
    ("autograd.hand_gradient", (HAND_GRADIENT[0], _a, _a)),
    ("autograd.hand_gradient", HAND_GRADIENT[:2]),
    ("autograd.hand_gradient", 3.0),
    ("autograd.hand_gradient", ...),
    ("autograd.graph_nodes", GRAPH_NODES + 1),
    ("autograd.graph_nodes", "3491"),
    ("autograd.graph_nodes", ...),
    ("autograd.relu_mlp_backward", relu_mlp_backward_tanh_derivative),
    ("autograd.relu_mlp_backward", relu_mlp_backward_sum_not_mean),
    ("autograd.relu_mlp_backward", relu_mlp_backward_transposed),
    ("autograd.relu_mlp_backward", relu_mlp_backward_todo),
    ("autograd.relu_mlp_backward", ...),
]


@pytest.mark.parametrize(("name", "answer"), CORRECT)
def test_correct_answer_passes(name: str, answer: Any) -> None:
    assert_correct(name, answer)


@pytest.mark.parametrize(("name", "answer"), WRONG)
def test_wrong_or_missing_answer_fails(name: str, answer: Any) -> None:
    assert_rejected(name, answer)


@pytest.mark.parametrize(
    ("name", "answer", "hint"),
    [
        ("autograd.sigmoid", sigmoid_forgets_one_minus, "sigma(x) * (1 - sigma(x))"),
        ("autograd.sigmoid", sigmoid_composed, "single new node"),
        ("autograd.hand_gradient", (_a * _b + _c, _a * _a, _a), "used twice"),
        ("autograd.graph_nodes", len(MLP(2, [32, 32, 1]).parameters()), "number of parameters"),
        ("autograd.graph_nodes", 2 * graph_nodes([16, 16, 1], [Value(0.3), Value(-0.5)]), "faster than the width"),
        ("autograd.graph_nodes", 4 * graph_nodes([16, 16, 1], [Value(0.3), Value(-0.5)]), "only the middle layer"),
        ("autograd.graph_nodes", graph_nodes([16, 16, 1], [Value(0.3), Value(-0.5)]), "hidden width 32"),
        ("autograd.graph_nodes", 3000, "measure it"),
        ("autograd.relu_mlp_backward", relu_mlp_backward_tanh_derivative, "local derivative of relu"),
        ("autograd.relu_mlp_backward", relu_mlp_backward_sum_not_mean, "N times too large"),
        ("autograd.relu_mlp_backward", relu_mlp_backward_transposed, "shape"),
    ],
)
def test_wrong_answer_gets_a_hint(name: str, answer: Any, hint: str) -> None:
    assert_hint(name, answer, hint)


def test_references_are_independent_of_the_checkers() -> None:
    # the reference answers above, recomputed with torch autograd and torch.nn
    a, b, c = (torch.tensor(HAND_GRADIENT_INPUTS[k], dtype=torch.float64, requires_grad=True) for k in "abc")
    ((a * b + c) * a).backward()
    assert (a.grad.item(), b.grad.item(), c.grad.item()) == HAND_GRADIENT == (-2.0, 4.0, 2.0)
    # about three nodes per weight (leaf, multiply, add), two per neuron (bias, relu), one per input
    assert GRAPH_NODES == 32 * (3 * 2 + 2) + 32 * (3 * 32 + 2) + (3 * 32 + 1) + 2


def test_assert_grades() -> None:
    assert_grades("autograd.sigmoid", lambda: sigmoid_solution, [lambda: sigmoid_forgets_one_minus, lambda: sigmoid_composed])
    assert_grades("autograd.hand_gradient", lambda: HAND_GRADIENT, [lambda: (_a * _b, _a * _a, _a)])
    assert_grades("autograd.graph_nodes", lambda: GRAPH_NODES, [lambda: 2 * GRAPH_NODES])
    assert_grades("autograd.relu_mlp_backward", lambda: relu_mlp_backward_solution, [lambda: relu_mlp_backward_tanh_derivative])
    x = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    torch.sigmoid(x).backward()
    v = Value(0.3)
    sigmoid_solution(v).backward()
    assert v.grad == pytest.approx(x.grad.item(), rel=1e-14)
