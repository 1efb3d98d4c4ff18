"""The scalar Value engine against torch autograd: every op, random programs, accumulation, order.

Forward values and every input gradient are compared with torch float64 scalars through one
helper; the same Python function runs on both because Value and torch tensors share the operator
names (+, *, **, exp, log, tanh, relu, ...).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import pytest
import torch

from dlscratch.autograd import Value, topological_order


def assert_matches_torch(fn: Callable[..., object], inputs: Sequence[float], tol: float = 1e-12) -> None:
    """``fn`` on Values equals ``fn`` on float64 torch scalars: output value and every input grad."""
    vs = [Value(x) for x in inputs]
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    out_v, out_t = fn(*vs), fn(*ts)
    assert isinstance(out_v, Value)
    out_v.backward()
    out_t.backward()
    assert out_v.data == pytest.approx(out_t.item(), abs=tol, rel=tol), "forward value differs"
    for i, (v, t) in enumerate(zip(vs, ts)):
        want = 0.0 if t.grad is None else t.grad.item()  # torch leaves unused inputs at None
        assert v.grad == pytest.approx(want, abs=tol, rel=tol), f"gradient of input {i} differs"


OPS: list[tuple[str, Callable[..., object], list[float]]] = [
    ("add", lambda a, b: a + b, [1.5, -2.25]),
    ("mul", lambda a, b: a * b, [1.5, -2.25]),
    ("pow 2", lambda a: a**2, [-1.7]),
    ("pow 3 negative base", lambda a: a**3, [-1.3]),
    ("pow -1", lambda a: a**-1, [0.8]),
    ("pow 0.5", lambda a: a**0.5, [2.3]),
    ("pow -1.5", lambda a: a**-1.5, [1.7]),
    ("pow 0", lambda a: a**0, [1.7]),
    ("exp", lambda a: a.exp(), [0.6]),
    ("log", lambda a: a.log(), [0.35]),
    ("tanh", lambda a: a.tanh(), [0.9]),
    ("relu positive", lambda a: a.relu(), [0.9]),
    ("relu negative", lambda a: a.relu(), [-0.9]),
    ("relu at zero", lambda a: a.relu(), [0.0]),
    ("neg", lambda a: -a, [0.9]),
    ("sub", lambda a, b: a - b, [0.9, 2.5]),
    ("div", lambda a, b: a / b, [0.9, -2.5]),
    ("radd", lambda a: 3.0 + a, [0.9]),
    ("rmul", lambda a: 3.0 * a, [0.9]),
    ("rsub", lambda a: 3.0 - a, [0.9]),
    ("rdiv", lambda a: 3.0 / a, [0.9]),
    ("int constants", lambda a: 2 * a + 1 - a / 4, [0.9]),
    ("neuron", lambda x1, w1, x2, w2, b: (x1 * w1 + x2 * w2 + b).tanh(), [2.0, -0.5, -1.0, 0.75, 1.25]),
]


@pytest.mark.parametrize(("name", "fn", "inputs"), OPS, ids=[o[0] for o in OPS])
def test_each_op_matches_torch(name: str, fn: Callable[..., object], inputs: list[float]) -> None:
    assert_matches_torch(fn, inputs)


@pytest.mark.parametrize(
    ("fn", "x", "local"),
    [
        (lambda a: a.exp(), 0.3, math.exp(0.3)),
        (lambda a: a.log(), 0.3, 1 / 0.3),
        (lambda a: a.tanh(), 0.3, 1 - math.tanh(0.3) ** 2),
        (lambda a: a**3, 0.3, 3 * 0.3**2),
        (lambda a: a.relu(), -0.3, 0.0),
    ],
)
def test_local_derivative_matches_finite_difference(fn: Callable[[Value], Value], x: float, local: float) -> None:
    h = 1e-6
    numeric = (fn(Value(x + h)).data - fn(Value(x - h)).data) / (2 * h)
    v = Value(x)
    fn(v).backward()
    assert v.grad == pytest.approx(local, rel=1e-12)
    assert numeric == pytest.approx(local, rel=1e-6, abs=1e-9)


# ----- random straight-line programs -------------------------------------------------------------

PROGRAM_OPS: dict[str, Callable[[object, object, float], object]] = {
    "+": lambda a, b, c: a + b,
    "-": lambda a, b, c: a - b,
    "*": lambda a, b, c: a * b,
    "/": lambda a, b, c: a / b,
    "c+": lambda a, b, c: c + a,
    "c-": lambda a, b, c: c - a,
    "c*": lambda a, b, c: c * a,
    "c/": lambda a, b, c: c / a,
    "neg": lambda a, b, c: -a,
    "**": lambda a, b, c: a ** c,
    "exp": lambda a, b, c: a.exp(),
    "log": lambda a, b, c: a.log(),
    "tanh": lambda a, b, c: a.tanh(),
    "relu": lambda a, b, c: a.relu(),
}
EXPONENTS = (2, 3, -1, 0.5, 1.5, -0.5)


def random_program(seed: int, n_inputs: int = 4, n_steps: int = 25) -> tuple[list[float], list[tuple]]:
    """Inputs and steps (op, i, j, c); every op stays in its domain and every value in [-20, 20]."""
    rng = random.Random(seed)
    inputs = [rng.uniform(-2.0, 2.0) for _ in range(n_inputs)]
    slots = [Value(x) for x in inputs]
    steps: list[tuple] = []
    while len(steps) < n_steps:
        op = rng.choice(sorted(PROGRAM_OPS))
        i, j = rng.randrange(len(slots)), rng.randrange(len(slots))
        c = rng.choice(EXPONENTS) if op == "**" else rng.uniform(-2.0, 2.0)
        a, b = slots[i].data, slots[j].data
        if (op == "/" and abs(b) < 0.5) or (op in ("c/", "**") and abs(a) < 0.3) or (op == "log" and a < 0.3):
            continue
        if (op == "exp" and a > 2.5) or (op == "relu" and abs(a) < 1e-3):
            continue
        try:
            out = PROGRAM_OPS[op](slots[i], slots[j], c)
        except ValueError:  # negative base with a non-integer exponent
            continue
        if abs(out.data) > 20.0:
            continue
        steps.append((op, i, j, c))
        slots.append(out)
    return inputs, steps


def run_program(inputs: Sequence[object], steps: Sequence[tuple]) -> object:
    """Replay a program on Values or on torch scalars; the output sums every intermediate."""
    slots = list(inputs)
    for op, i, j, c in steps:
        slots.append(PROGRAM_OPS[op](slots[i], slots[j], c))
    return sum(slots[len(inputs) :])


@pytest.mark.parametrize("seed", range(40))
def test_random_programs_match_torch(seed: int) -> None:
    inputs, steps = random_program(seed)
    assert_matches_torch(lambda *xs: run_program(xs, steps), inputs, tol=1e-11)


def test_random_programs_use_every_op() -> None:
    used = {op for seed in range(40) for op, *_ in random_program(seed)[1]}
    assert used == set(PROGRAM_OPS)


# ----- gradient accumulation ---------------------------------------------------------------------


def test_node_used_twice_accumulates() -> None:
    a = Value(3.0)
    (a * a).backward()
    assert a.grad == 6.0  # d(a^2)/da = 2a: one contribution per use
    b = Value(3.0)
    (b + b).backward()
    assert b.grad == 2.0


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: a * b + a,
        lambda a, b: (a * b + a) * a,
        lambda a, b: (a + b) * (a - b) + (a * b).tanh() * a,
        lambda a, b: sum([a] * 7) * b,  # one node, seven uses
    ],
)
def test_reused_nodes_match_torch(fn: Callable[..., object]) -> None:
    assert_matches_torch(fn, [1.3, -0.7])


def test_diamond_accumulates_through_shared_intermediate() -> None:
    # x -> y -> (u, v) -> z: y is used twice, x only once
    x = Value(0.5)
    y = x.tanh()
    z = y * 2.0 + y.exp()
    z.backward()
    t = math.tanh(0.5)
    assert y.grad == pytest.approx(2.0 + math.exp(t))
    assert x.grad == pytest.approx((2.0 + math.exp(t)) * (1 - t * t))


def test_backward_twice_accumulates_leaves_like_torch() -> None:
    a, b = Value(1.5), Value(-0.5)
    ta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-0.5, dtype=torch.float64, requires_grad=True)
    out, tout = (a * b).tanh() * a, (ta * tb).tanh() * ta
    for _ in range(2):
        out.backward()
        tout.backward(retain_graph=True)
    assert a.grad == pytest.approx(ta.grad.item(), rel=1e-12)
    assert b.grad == pytest.approx(tb.grad.item(), rel=1e-12)


def test_leaf_backward() -> None:
    a = Value(2.0)
    a.backward()
    assert a.grad == 1.0


# ----- topological order -------------------------------------------------------------------------


def test_topological_order_puts_inputs_first() -> None:
    inputs, steps = random_program(7)
    root = run_program([Value(x) for x in inputs], steps)
    order = topological_order(root)
    position = {node: k for k, node in enumerate(order)}
    assert len(position) == len(order), "a node appears twice"
    assert order[-1] is root
    for node in order:
        for child in node._prev:
            assert position[child] < position[node]


def test_topological_order_contains_exactly_the_ancestors() -> None:
    a, b, unused = Value(1.0), Value(2.0), Value(3.0)
    c = a * b
    d = c + a
    order = topological_order(d)
    assert set(order) == {a, b, c, d} and unused not in order
    assert topological_order(a) == [a]


def test_deep_graph_needs_no_recursion() -> None:
    x = Value(1.0)
    total = Value(0.0)
    for _ in range(5000):  # deeper than Python's default recursion limit
        total = total + x * 0.5
    total.backward()
    assert total.data == pytest.approx(2500.0)
    assert x.grad == pytest.approx(2500.0)


# ----- bad input ---------------------------------------------------------------------------------


def test_pow_with_value_exponent_is_refused() -> None:
    with pytest.raises(TypeError, match="exponent .* constant"):
        Value(2.0) ** Value(3.0)
    with pytest.raises(TypeError, match="constant power"):
        2.0 ** Value(3.0)
    with pytest.raises(TypeError, match="'3'"):
        Value(2.0) ** "3"


def test_log_of_non_positive_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"-2\.5"):
        Value(-2.5).log()
    with pytest.raises(ValueError, match=r"positive .* 0\.0"):
        Value(0.0).log()


def test_pow_domain_errors_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"-4\.0 \*\* 0\.5"):
        Value(-4.0) ** 0.5
    with pytest.raises(ValueError, match="divides by zero"):
        Value(1.0) / Value(0.0)


def test_exp_overflow_names_the_value() -> None:
    with pytest.raises(OverflowError, match="800"):
        Value(800.0).exp()


@pytest.mark.parametrize("bad", ["1.0", torch.tensor(1.0), 1 + 2j, None, True])
def test_value_holds_only_real_numbers(bad: object) -> None:
    with pytest.raises(TypeError, match="real number"):
        Value(bad)


def test_unsupported_operand_raises_type_error() -> None:
    with pytest.raises(TypeError):
        Value(1.0) + "a"
    with pytest.raises(TypeError):
        "a" * Value(1.0) * 1.5


def test_repr_shows_label_data_and_grad() -> None:
    v = Value(1.5, label="w")
    v.grad = -0.25
    assert repr(v) == "Value(w: data=1.5, grad=-0.25)"


def test_local_grads_must_match_children() -> None:
    with pytest.raises(ValueError, match="one local derivative per child"):
        Value(1.0, (Value(1.0), Value(2.0)), "+", (1.0,))
