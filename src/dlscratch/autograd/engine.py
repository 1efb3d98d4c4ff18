r"""A scalar reverse-mode automatic differentiation engine, in the spirit of micrograd.

Every :class:`Value` holds one Python float, the gradient of the final output with respect to it,
the values it was computed from, and the local derivatives of the operation with respect to each
of them. Calling :meth:`Value.backward` on the output visits the graph in reverse topological
order and applies the chain rule node by node.

Introduced in chapter 2, *Autograd from scratch*.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["Value", "topological_order"]


class Value:
    r"""A scalar node of a computation graph: its value, its gradient, and how it was made.

    The primitive operations are ``+``, ``*``, ``**`` with a constant exponent, :meth:`exp`,
    :meth:`log`, :meth:`tanh` and :meth:`relu`; negation, subtraction, division and the
    reflected operators (``2 + v``, ``2 * v``, ``2 - v``, ``2 / v``) are built from them. A
    primitive computes its output :math:`y` and stores, for each input :math:`x`, the local
    derivative :math:`\partial y / \partial x`. :meth:`backward` then applies the chain rule,

    .. math::

        \bar{x} \mathrel{+}= \bar{y} \, \frac{\partial y}{\partial x},
        \qquad \bar{v} := \frac{\partial L}{\partial v},

    with ``+=`` because a value used by several operations receives one contribution from each.

    Derivation: chapter 2, *Autograd from scratch*.

    Args:
        data: the scalar (any real number; stored as a Python float).
        _children: the values this one was computed from (empty for a leaf).
        _op: the name of the operation that produced it (empty for a leaf), for drawing.
        _local_grads: :math:`\partial\,\mathrm{data} / \partial\,\mathrm{child}` for each child,
            in the same order as ``_children``.
        label: an optional name, for drawing.

    Raises:
        TypeError: if ``data`` is not a real number (a tensor, a string, a complex number, ...).
        ValueError: if ``_local_grads`` does not have one entry per child.
    """

    __slots__ = {  # no per-instance __dict__: a graph holds tens of thousands of these
        "data": "The forward value, a Python float.",
        "grad": "The derivative of the output of the last ``backward`` call with respect to this value.",
        "_prev": "The inputs of the operation that produced this value.",
        "_local_grads": "The local derivative of this value with respect to each input.",
        "_op": "The name of that operation.",
        "label": "An optional name, for drawing.",
    }

    def __init__(
        self,
        data: float,
        _children: tuple[Value, ...] = (),
        _op: str = "",
        _local_grads: tuple[float, ...] = (),
        label: str = "",
    ) -> None:
        if type(data) is not float:  # fast path: every operation below passes a float
            if isinstance(data, bool) or not isinstance(data, numbers.Real):
                raise TypeError(f"Value holds one real number, got {data!r} of type {type(data).__name__}")
            data = float(data)
        if len(_local_grads) != len(_children):
            raise ValueError(f"need one local derivative per child: {len(_children)} children, got {_local_grads!r}")
        self.data = data  # the forward value
        self.grad = 0.0  # dL/d(this value), filled in by backward()
        self._prev = tuple(_children)  # the inputs of the operation that produced this node
        self._local_grads = tuple(_local_grads)  # d(this)/d(input), one per input
        self._op = _op  # that operation's name
        self.label = label  # a name, for drawing

    def __repr__(self) -> str:
        name = f"{self.label}: " if self.label else ""
        return f"Value({name}data={self.data:.6g}, grad={self.grad:.6g})"

    # ----- primitive operations: forward value and local derivatives ----------------------------

    def __add__(self, other: Value | float) -> Value:
        other = _lift(other)
        if other is None:
            return NotImplemented
        return Value(self.data + other.data, (self, other), "+", (1.0, 1.0))  # d(a+b)/da, d(a+b)/db

    def __mul__(self, other: Value | float) -> Value:
        other = _lift(other)
        if other is None:
            return NotImplemented
        return Value(self.data * other.data, (self, other), "*", (other.data, self.data))  # d(ab)/da = b, d(ab)/db = a

    def __pow__(self, exponent: float) -> Value:
        if isinstance(exponent, Value):
            raise TypeError(
                f"the exponent of ** must be a constant int or float, got {exponent!r}; for a "
                "variable exponent write (b * a.log()).exp() instead of a ** b"
            )
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
            raise TypeError(f"the exponent of ** must be an int or a float, got {exponent!r}")
        n, a = float(exponent), self.data
        if a < 0 and not n.is_integer():
            raise ValueError(f"{a!r} ** {n!r} is not a real number (negative base, non-integer exponent)")
        if a == 0 and n < 0:
            raise ValueError(f"{a!r} ** {n!r} divides by zero")
        if n == 0:
            local = 0.0
        elif a == 0 and n < 1:
            local = math.inf  # the slope of a^n at 0 for 0 < n < 1
        else:
            local = n * a ** (n - 1)  # d(a^n)/da = n a^(n-1)
        return Value(a**n, (self,), f"**{n:g}", (local,))

    def exp(self) -> Value:
        r"""Return :math:`e^{x}`; its derivative is :math:`e^{x}` itself."""
        try:
            e = math.exp(self.data)
        except OverflowError:
            raise OverflowError(f"exp({self.data!r}) overflows a float64") from None
        return Value(e, (self,), "exp", (e,))  # d(e^a)/da = e^a

    def log(self) -> Value:
        r"""Return the natural logarithm :math:`\log x`; its derivative is :math:`1/x`.

        Raises:
            ValueError: if the value is not positive (the message names it).
        """
        if self.data <= 0:
            raise ValueError(f"log needs a positive input, got {self.data!r} (in {self!r})")
        return Value(math.log(self.data), (self,), "log", (1.0 / self.data,))  # d(log a)/da = 1/a

    def tanh(self) -> Value:
        r"""Return :math:`\tanh x`; its derivative is :math:`1 - \tanh^2 x`."""
        t = math.tanh(self.data)
        return Value(t, (self,), "tanh", (1.0 - t * t,))  # d(tanh a)/da = 1 - tanh(a)^2

    def relu(self) -> Value:
        r"""Return :math:`\max(0, x)`; its derivative is 1 for :math:`x > 0`, else 0 (as in torch)."""
        positive = self.data > 0
        return Value(self.data if positive else 0.0, (self,), "relu", (1.0 if positive else 0.0,))

    # ----- derived operations: compositions of the primitives -----------------------------------

    def __neg__(self) -> Value:  # -a = a * (-1)
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:  # a - b = a + (-b)
        other = _lift(other)
        return NotImplemented if other is None else self + (-other)

    def __truediv__(self, other: Value | float) -> Value:  # a / b = a * b^(-1)
        other = _lift(other)
        return NotImplemented if other is None else self * other**-1

    def __radd__(self, other: float) -> Value:  # 2 + a
        other = _lift(other)
        return NotImplemented if other is None else other + self

    def __rmul__(self, other: float) -> Value:  # 2 * a
        other = _lift(other)
        return NotImplemented if other is None else other * self

    def __rsub__(self, other: float) -> Value:  # 2 - a
        other = _lift(other)
        return NotImplemented if other is None else other + (-self)

    def __rtruediv__(self, other: float) -> Value:  # 2 / a
        other = _lift(other)
        return NotImplemented if other is None else other * self**-1

    def __rpow__(self, base: float) -> Value:  # 2 ** a
        raise TypeError(
            f"a Value can only be raised to a constant power; for {base!r} ** x write "
            f"(x * math.log({base!r})).exp()"
        )

    # ----- reverse mode ---------------------------------------------------------------------------

    def backward(self) -> None:
        r"""Fill in ``grad`` of every value this one depends on: :math:`\partial\,\mathrm{self}/\partial v`.

        The gradients of intermediate nodes are reset first; leaves accumulate, as in PyTorch, so
        call ``zero_grad`` (or set ``grad = 0``) on the leaves between two optimisation steps.
        """
        order = topological_order(self)  # inputs before the values computed from them
        for node in order:
            if node._prev:
                node.grad = 0.0
        self.grad += 1.0  # dL/dL
        for node in reversed(order):  # outputs first: a node's grad is complete before it is sent on
            for child, local in zip(node._prev, node._local_grads):
                child.grad += local * node.grad  # chain rule; += sums over every use of child


def _lift(x: Value | float) -> Value | None:
    """``x`` as a Value (constants become leaves), or None when ``x`` is not a number."""
    if isinstance(x, Value):
        return x
    if type(x) in (float, int) or (isinstance(x, numbers.Real) and not isinstance(x, bool)):
        return Value(x)
    return None


def topological_order(root: Value) -> list[Value]:
    r"""All values ``root`` depends on, each listed after every value it was computed from.

    A depth-first search that appends a node once all of its inputs have been appended
    (post-order). It uses an explicit stack rather than recursion, so graphs deeper than Python's
    recursion limit (a sum of thousands of terms) work too.

    Args:
        root: the output of the computation.

    Returns:
        The nodes, leaves first and ``root`` last; each node appears once.
    """
    order: list[Value] = []
    visited: set[Value] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:  # every input of node is already in order
            order.append(node)
            continue
        if node in visited:
            continue
        visited.add(node)
        stack.append((node, True))  # revisit after the inputs
        stack.extend((child, False) for child in node._prev if child not in visited)
    return order
