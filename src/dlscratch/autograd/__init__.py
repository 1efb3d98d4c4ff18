r"""Automatic differentiation built by hand: the scalar ``Value`` engine and a tiny neural-net
library on top of it (chapter 2), and manual backpropagation helpers."""

from .engine import Value, topological_order
from .manual import batchnorm_backward, cross_entropy_backward, embedding_backward, linear_backward, tanh_backward
from .scalar_layers import MLP, Layer, Module, Neuron

__all__ = ["Value", "topological_order", "Module", "Neuron", "Layer", "MLP",
           "cross_entropy_backward", "linear_backward", "tanh_backward", "batchnorm_backward", "embedding_backward"]
