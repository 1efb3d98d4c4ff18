"""The scalar neural-net library: Neuron, Layer and MLP against torch.nn with copied weights."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from dlscratch.autograd import MLP, Layer, Neuron, Value


def to_torch(model: MLP) -> nn.Sequential:
    """A float64 nn.Sequential with the same weights as ``model`` (hidden activations included)."""
    mods: list[nn.Module] = []
    for k, layer in enumerate(model.layers):
        nin, nout = len(layer.neurons[0].weight), len(layer.neurons)
        lin = nn.Linear(nin, nout, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[w.data for w in n.weight] for n in layer.neurons], dtype=torch.float64))  # (nout, nin)
            lin.bias.copy_(torch.tensor([n.bias.data for n in layer.neurons], dtype=torch.float64))
        mods.append(lin)
        act = layer.neurons[0].act
        if act == "relu":
            mods.append(nn.ReLU())
        elif act == "tanh":
            mods.append(nn.Tanh())
        else:
            assert k == len(model.layers) - 1, "only the last layer is linear"
    return nn.Sequential(*mods)


@pytest.mark.parametrize(
    ("nin", "nouts", "act"),
    [(2, [16, 16, 1], "relu"), (3, [4, 4, 2], "tanh"), (1, [1], "relu"), (5, [3], "tanh"), (2, [7, 1, 3], "relu")],
)
def test_mlp_matches_torch_sequential(nin: int, nouts: list[int], act: str) -> None:
    model = MLP(nin, nouts, act=act, rng=random.Random(0))
    ref = to_torch(model)
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(6, nin, generator=gen, dtype=torch.float64)
    cot = torch.randn(6, nouts[-1], generator=gen, dtype=torch.float64)  # a random cotangent per output
    loss_v = sum(c * o for x, cs in zip(xs.tolist(), cot.tolist()) for c, o in zip(cs, model(x)))
    loss_t = (ref(xs) * cot).sum()
    loss_v.backward()
    loss_t.backward()
    assert loss_v.data == pytest.approx(loss_t.item(), rel=1e-12, abs=1e-12)
    ref_grads = []
    for lin in (m for m in ref if isinstance(m, nn.Linear)):
        for row_w, b in zip(lin.weight.grad.tolist(), lin.bias.grad.tolist()):
            ref_grads += [*row_w, b]  # our order: each neuron's weights, then its bias
    ours = [p.grad for p in model.parameters()]
    assert ours == pytest.approx(ref_grads, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("nin", "nouts"), [(2, [16, 16, 1]), (3, [4, 4, 1]), (1, [1]), (10, [32, 4])])
def test_parameter_count(nin: int, nouts: list[int]) -> None:
    model = MLP(nin, nouts)
    sizes = [nin, *nouts]
    want = sum((sizes[k] + 1) * sizes[k + 1] for k in range(len(nouts)))
    assert len(model.parameters()) == want
    assert len({id(p) for p in model.parameters()}) == want, "a parameter is listed twice"
    assert want == sum(p.numel() for p in to_torch(model).parameters())


def test_mlp_2_16_16_1_has_337_parameters() -> None:
    assert len(MLP(2, [16, 16, 1]).parameters()) == 337
    assert len(Neuron(5).parameters()) == 6
    assert len(Layer(5, 3).parameters()) == 18


def test_zero_grad_resets_every_parameter() -> None:
    model = MLP(2, [3, 1], rng=random.Random(0))
    model([0.5, -1.0])[0].backward()
    assert any(p.grad != 0.0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


def test_init_is_seeded_and_bounded_like_nn_linear() -> None:
    a, b = MLP(4, [8, 2], rng=random.Random(3)), MLP(4, [8, 2], rng=random.Random(3))
    assert [p.data for p in a.parameters()] == [p.data for p in b.parameters()]
    for layer in a.layers:
        bound = 1 / math.sqrt(len(layer.neurons[0].weight))
        assert all(abs(p.data) <= bound for p in layer.parameters())
    random.seed(0)
    c = MLP(4, [8, 2])
    random.seed(0)
    assert [p.data for p in c.parameters()] == [p.data for p in MLP(4, [8, 2]).parameters()]


def test_output_layer_is_linear() -> None:
    model = MLP(2, [4, 1], act="relu", rng=random.Random(0))
    assert [n.act for n in model.layers[0].neurons] == ["relu"] * 4
    assert model.layers[-1].neurons[0].act == "linear"
    out = model([3.0, -2.0])
    assert isinstance(out, list) and len(out) == 1 and isinstance(out[0], Value)


def test_accepts_values_as_inputs() -> None:
    model = MLP(2, [3, 1], rng=random.Random(0))
    x = [Value(0.5), Value(-1.5)]
    model(x)[0].backward()
    assert all(v.grad != 0.0 for v in x)


def test_sgd_step_lowers_the_loss() -> None:
    model = MLP(2, [8, 1], act="tanh", rng=random.Random(0))
    data = [([0.0, 1.0], 1.0), ([1.0, 0.0], -1.0), ([1.0, 1.0], 1.0), ([-1.0, 0.5], -1.0)]

    def loss() -> Value:
        return sum((model(x)[0] - y) ** 2 for x, y in data) / len(data)

    before = loss()
    model.zero_grad()
    before.backward()
    for p in model.parameters():
        p.data -= 0.05 * p.grad
    assert loss().data < before.data


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="nin=0"):
        Neuron(0)
    with pytest.raises(ValueError, match="'sigmoid'"):
        Neuron(2, act="sigmoid")
    with pytest.raises(ValueError, match="nout=0"):
        Layer(2, 0)
    with pytest.raises(ValueError, match="empty"):
        MLP(2, [])
    with pytest.raises(ValueError, match="takes 2 inputs, got 3"):
        MLP(2, [4, 1])([1.0, 2.0, 3.0])


def test_repr() -> None:
    assert repr(MLP(2, [16, 16, 1])) == "MLP(2 -> 16 -> 16 -> 1, hidden act='relu')"
    assert repr(Layer(3, 4, act="tanh")) == "Layer(3, 4, act='tanh')"
