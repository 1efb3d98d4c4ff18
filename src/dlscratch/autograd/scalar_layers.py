r"""A tiny neural-network library on top of the scalar :class:`~dlscratch.autograd.engine.Value`.

A :class:`Neuron` is a weighted sum plus a bias followed by an activation; a :class:`Layer` is a
list of neurons that read the same inputs; an :class:`MLP` chains layers. Every module lists its
learnable values with ``parameters()`` and clears their gradients with ``zero_grad()``, the same
interface as ``torch.nn.Module``. Weights and biases start uniform in
:math:`[-1/\sqrt{n_\text{in}}, 1/\sqrt{n_\text{in}}]`, the default of ``torch.nn.Linear``.

Introduced in chapter 2, *Autograd from scratch*.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from .engine import Value

__all__ = ["Module", "Neuron", "Layer", "MLP"]

_ACTIVATIONS = ("relu", "tanh", "linear")


class Module:
    r"""Base class: a module owns a list of parameters and can reset their gradients."""

    def parameters(self) -> list[Value]:
        r"""Every learnable value of the module, in a fixed order."""
        return []

    def zero_grad(self) -> None:
        r"""Set the gradient of every parameter to zero (do it before each ``backward``)."""
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    r"""One neuron: :math:`y = \phi\left(\sum_{i=1}^{n_\text{in}} w_i x_i + b\right)`.

    Args:
        nin: number of inputs :math:`n_\text{in}`.
        act: the activation :math:`\phi`: ``"relu"``, ``"tanh"`` or ``"linear"`` (none).
        rng: source of the initial weights; Python's global ``random`` when omitted.

    Raises:
        ValueError: if ``nin`` is smaller than 1 or ``act`` is unknown.

    Shape:
        - input: a sequence of ``nin`` numbers or Values
        - output: one Value
    """

    def __init__(self, nin: int, act: str = "relu", rng: random.Random | None = None) -> None:
        if nin < 1:
            raise ValueError(f"a neuron needs at least one input, got nin={nin}")
        if act not in _ACTIVATIONS:
            raise ValueError(f"act must be one of {_ACTIVATIONS}, got {act!r}")
        uniform = rng.uniform if rng is not None else random.uniform  # seeded by seed_everything
        bound = 1.0 / math.sqrt(nin)
        self.weight = [Value(uniform(-bound, bound), label="w") for _ in range(nin)]
        self.bias = Value(uniform(-bound, bound), label="b")
        self.act = act

    def __call__(self, x: Sequence[Value | float]) -> Value:
        if len(x) != len(self.weight):
            raise ValueError(f"this neuron takes {len(self.weight)} inputs, got {len(x)}")
        z = sum((w * xi for w, xi in zip(self.weight, x)), self.bias)  # w . x + b
        if self.act == "relu":
            return z.relu()
        if self.act == "tanh":
            return z.tanh()
        return z

    def parameters(self) -> list[Value]:
        return [*self.weight, self.bias]

    def __repr__(self) -> str:
        return f"Neuron({len(self.weight)}, act={self.act!r})"


class Layer(Module):
    r"""``nout`` neurons reading the same ``nin`` inputs: :math:`\vect{y} = \phi(\mat{W}\vect{x} + \vect{b})`.

    Args:
        nin: number of inputs.
        nout: number of neurons (outputs).
        act: activation of every neuron (see :class:`Neuron`).
        rng: source of the initial weights.

    Shape:
        - input: a sequence of ``nin`` numbers or Values
        - output: a list of ``nout`` Values
    """

    def __init__(self, nin: int, nout: int, act: str = "relu", rng: random.Random | None = None) -> None:
        if nout < 1:
            raise ValueError(f"a layer needs at least one neuron, got nout={nout}")
        self.neurons = [Neuron(nin, act=act, rng=rng) for _ in range(nout)]

    def __call__(self, x: Sequence[Value | float]) -> list[Value]:
        return [neuron(x) for neuron in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for neuron in self.neurons for p in neuron.parameters()]

    def __repr__(self) -> str:
        n = self.neurons[0]
        return f"Layer({len(n.weight)}, {len(self.neurons)}, act={n.act!r})"


class MLP(Module):
    r"""A multi-layer perceptron: hidden layers with activation ``act``, a linear output layer.

    ``MLP(2, [16, 16, 1])`` maps 2 inputs through two hidden layers of 16 neurons to 1 output and
    has :math:`\sum_\ell (n_{\ell-1} + 1)\, n_\ell` parameters, here :math:`3 \cdot 16 + 17 \cdot 16 + 17 \cdot 1 = 337`.

    Args:
        nin: number of inputs.
        nouts: the width of every layer, the last one being the number of outputs.
        act: activation of the hidden layers (see :class:`Neuron`).
        rng: source of the initial weights.

    Shape:
        - input: a sequence of ``nin`` numbers or Values
        - output: a list of ``nouts[-1]`` Values
    """

    def __init__(self, nin: int, nouts: Sequence[int], act: str = "relu", rng: random.Random | None = None) -> None:
        if not nouts:
            raise ValueError("nouts must list at least one layer width, got an empty sequence")
        sizes = [nin, *nouts]
        last = len(nouts) - 1
        self.layers = [
            Layer(sizes[i], sizes[i + 1], act=act if i < last else "linear", rng=rng) for i in range(len(nouts))
        ]

    def __call__(self, x: Sequence[Value | float]) -> list[Value]:
        for layer in self.layers:
            x = layer(x)
        return list(x)

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        widths = [len(self.layers[0].neurons[0].weight)] + [len(layer.neurons) for layer in self.layers]
        act = self.layers[0].neurons[0].act if len(self.layers) > 1 else "linear"
        return f"MLP({' -> '.join(map(str, widths))}, hidden act={act!r})"
