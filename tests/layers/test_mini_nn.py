"""The mini_nn layers against their torch twins: outputs and every gradient, in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dlscratch.layers.mini_nn import BatchNorm1d, Embedding, FlattenConsecutive, Linear, Sequential, Tanh, Transpose
from dlscratch.layers.norms import batch_norm
from tests.helpers import assert_same_forward_backward

f64 = torch.float64


# ---------------------------------------------------------------- Linear
@pytest.mark.parametrize("shape", [(5,), (7, 5), (2, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_nn_linear(shape: tuple[int, ...], bias: bool) -> None:
    ours = Linear(5, 4, bias=bias, dtype=f64)
    ref = nn.Linear(5, 4, bias=bias, dtype=f64)
    x = torch.randn(shape, dtype=f64)

    def run_ours(x, w, *b):
        ours.weight, ours.bias = w, (b[0] if b else None)
        return ours(x)

    def run_ref(x, w, *b):
        params = {"weight": w.T} | ({"bias": b[0]} if b else {})  # nn.Linear stores (out, in)
        return functional_call(ref, params, (x,))

    inputs = [x, ours.weight.detach()] + ([torch.randn(4, dtype=f64)] if bias else [])
    assert_same_forward_backward(run_ours, run_ref, inputs)


def test_linear_copied_into_nn_linear_gives_same_gradients() -> None:
    ours = Linear(6, 3, dtype=f64)
    with torch.no_grad():
        ours.bias += torch.randn(3, dtype=f64)
    ref = nn.Linear(6, 3, dtype=f64)
    with torch.no_grad():
        ref.weight.copy_(ours.weight.T)
        ref.bias.copy_(ours.bias)
    x = torch.randn(8, 6, dtype=f64)
    torch.testing.assert_close(ours(x), ref(x))
    ours(x).square().sum().backward()
    ref(x).square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad.T)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad)


def test_linear_init_scale_and_parameters() -> None:
    lin = Linear(400, 300)
    assert lin.weight.shape == (400, 300) and lin.weight.requires_grad
    assert abs(lin.weight.std().item() - 400**-0.5) < 0.002  # Kaiming-style 1/sqrt(fan_in)
    assert len(lin.parameters()) == 2 and len(Linear(3, 2, bias=False).parameters()) == 1


def test_weights_come_from_the_global_generator() -> None:
    torch.manual_seed(5)
    w1, e1 = Linear(3, 2).weight, Embedding(4, 2).weight
    torch.manual_seed(5)
    w2, e2 = Linear(3, 2).weight, Embedding(4, 2).weight
    assert torch.equal(w1, w2) and torch.equal(e1, e2)
    torch.manual_seed(5)
    assert torch.equal(w1, torch.randn(3, 2) / 3**0.5)  # drawn as torch.randn would, on the CPU


# ---------------------------------------------------------------- BatchNorm1d
def _bn_pair(C: int, momentum: float = 0.1) -> tuple[BatchNorm1d, nn.BatchNorm1d]:
    ours = BatchNorm1d(C, momentum=momentum, dtype=f64)
    ref = nn.BatchNorm1d(C, momentum=momentum, dtype=f64)
    with torch.no_grad():
        ours.weight.copy_(torch.rand(C, dtype=f64) + 0.5)
        ours.bias.copy_(torch.randn(C, dtype=f64))
        ref.weight.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
    return ours, ref


@pytest.mark.parametrize("shape", [(16, 5), (2, 5), (8, 5, 4), (3, 5, 1), (1, 5, 6)])  # torch's (N, C) and (N, C, L)
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_matches_nn_batchnorm(shape: tuple[int, ...], training: bool) -> None:
    ours, ref = _bn_pair(5)
    ours.train(training)
    ref.train(training)
    if not training:  # some non-trivial running statistics
        ours.running_mean = torch.randn(5, dtype=f64)
        ours.running_var = torch.rand(5, dtype=f64) + 0.5
        ref.running_mean.copy_(ours.running_mean)
        ref.running_var.copy_(ours.running_var)
    x = 3.0 + 2.0 * torch.randn(shape, dtype=f64)

    def run_ours(x, w, b):
        ours.weight, ours.bias = w, b
        return ours(x)

    def run_ref(x, w, b):
        return functional_call(ref, {"weight": w, "bias": b}, (x,))

    assert_same_forward_backward(run_ours, run_ref, [x, ours.weight.detach(), ours.bias.detach()])


@pytest.mark.parametrize("shape", [(32, 6), (16, 6, 4)])
def test_batchnorm_running_statistics_follow_torch(shape: tuple[int, ...]) -> None:
    ours, ref = _bn_pair(6, momentum=0.2)
    for step in range(5):
        x = step + (1.0 + step) * torch.randn(shape, dtype=f64)
        torch.testing.assert_close(ours(x), ref(x))
    assert ours.running_mean.shape == (6,) and ours.running_var.shape == (6,)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)  # unbiased batch variance
    ours.eval()
    ref.eval()
    x = torch.randn(shape, dtype=f64)
    torch.testing.assert_close(ours(x), ref(x))
    # in eval mode the output of one example does not depend on the rest of the batch
    torch.testing.assert_close(ours(x[:1]), ours(x)[:1])


def test_batchnorm_eval_does_not_update_running_statistics() -> None:
    bn = BatchNorm1d(3, dtype=f64).eval()
    bn(torch.randn(10, 3, dtype=f64) + 5)
    assert torch.equal(bn.running_mean, torch.zeros(3, dtype=f64))
    assert torch.equal(bn.running_var, torch.ones(3, dtype=f64))


def test_batchnorm_reducing_dim_0_alone_keeps_one_statistic_per_position() -> None:
    # chapter 5's bug, through the shared function: (N, C, L) reduced over dim 0 only is a batch
    # norm of N examples with C*L independent channels
    x = torch.randn(8, 3, 4, dtype=f64) + torch.arange(4, dtype=f64)  # (N, C, L), a mean per position
    w, b = torch.rand(3, dtype=f64) + 0.5, torch.randn(3, dtype=f64)
    rm, rv = torch.zeros(3, dtype=f64), torch.ones(3, dtype=f64)
    ref_rm, ref_rv = torch.zeros(12, dtype=f64), torch.ones(12, dtype=f64)
    for _ in range(3):
        y, rm, rv = batch_norm(x, w, b, rm, rv, True, dims=(0,))
        want = F.batch_norm(x.reshape(8, 12), ref_rm, ref_rv, w.repeat_interleave(4), b.repeat_interleave(4), training=True)
        torch.testing.assert_close(y, want.view(8, 3, 4))
    assert rm.shape == rv.shape == (3, 4)
    torch.testing.assert_close(rm, ref_rm.view(3, 4))
    torch.testing.assert_close(rv, ref_rv.view(3, 4))
    y, _, _ = batch_norm(x, w, b, rm, rv, False, dims=(0,))
    torch.testing.assert_close(y, F.batch_norm(x.reshape(8, 12), ref_rm, ref_rv, w.repeat_interleave(4), b.repeat_interleave(4)).view(8, 3, 4))


def test_batchnorm_keeps_no_output() -> None:
    bn = BatchNorm1d(3)
    bn(torch.randn(4, 3))
    assert not hasattr(bn, "out")


def test_batchnorm_rejects_bad_input() -> None:
    bn = BatchNorm1d(4)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 4\)"):
        bn(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="BatchNorm1d\\(4\\) got 5 channels"):
        bn(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"got 6 channels in dim 1 of input of shape \(2, 6, 4\)"):
        bn(torch.randn(2, 6, 4))  # the old channels-last layout (N, L, C) is refused
    with pytest.raises(ValueError, match="more than one value per channel"):
        bn(torch.randn(1, 4))


# ---------------------------------------------------------------- Tanh, Embedding
@pytest.mark.parametrize("shape", [(1,), (4, 7), (2, 3, 5)])
def test_tanh_matches_nn_tanh(shape: tuple[int, ...]) -> None:
    assert_same_forward_backward(Tanh(), nn.Tanh(), [4 * torch.randn(shape, dtype=f64)])
    assert Tanh().parameters() == []


@pytest.mark.parametrize("ix_shape", [(5,), (4, 3), (2, 8)])
def test_embedding_matches_nn_embedding(ix_shape: tuple[int, ...]) -> None:
    ours = Embedding(11, 6, dtype=f64)
    ref = nn.Embedding(11, 6, dtype=f64)
    ix = torch.randint(0, 11, ix_shape)
    ix.view(-1)[0] = ix.view(-1)[-1]  # a repeated id: its gradient rows must add up

    def run_ours(ix, w):
        ours.weight = w
        return ours(ix)

    assert_same_forward_backward(run_ours, lambda ix, w: functional_call(ref, {"weight": w}, (ix,)), [ix, ours.weight.detach()])
    assert ours.parameters()[0] is ours.weight and ours.weight.shape == (11, 6)


# ---------------------------------------------------------------- FlattenConsecutive, Sequential
@pytest.mark.parametrize(("T", "n", "out_shape"), [(8, 2, (3, 4, 10)), (8, 8, (3, 40)), (2, 2, (3, 10)), (6, 3, (3, 2, 15)), (1, 1, (3, 5))])
def test_flatten_consecutive_shapes_and_values(T: int, n: int, out_shape: tuple[int, ...]) -> None:
    x = torch.randn(3, T, 5)
    y = FlattenConsecutive(n)(x)
    assert tuple(y.shape) == out_shape
    groups = y.view(3, T // n, n * 5)
    for t in range(T // n):  # group t holds positions t*n ... t*n + n - 1, side by side
        torch.testing.assert_close(groups[:, t], torch.cat([x[:, t * n + k] for k in range(n)], dim=-1))


def test_flatten_consecutive_rejects_indivisible_length() -> None:
    with pytest.raises(ValueError, match=r"T=6.*n=4"):
        FlattenConsecutive(4)(torch.randn(2, 6, 3))
    with pytest.raises(ValueError, match="n >= 1, got 0"):
        FlattenConsecutive(0)


@pytest.mark.parametrize(("shape", "dims", "out_shape"), [((2, 3, 5), (1, -1), (2, 5, 3)), ((2, 3), (1, -1), (2, 3)), ((2, 3, 4, 5), (0, 2), (4, 3, 2, 5))])
def test_transpose_matches_torch_transpose(shape, dims, out_shape) -> None:
    x = torch.randn(shape, dtype=f64)
    assert_same_forward_backward(Transpose(*dims), lambda x: torch.transpose(x, *dims), [x])
    assert Transpose(*dims)(x).shape == out_shape and Transpose(*dims).parameters() == []


def test_sequential_outputs_are_every_layer_output() -> None:
    net = Sequential([Linear(4, 3), Tanh(), Linear(3, 2)])
    x = torch.randn(5, 4)
    outs = net.outputs(x)
    assert [o.shape for o in outs] == [(5, 3), (5, 3), (5, 2)]
    torch.testing.assert_close(outs[1], torch.tanh(outs[0]))
    torch.testing.assert_close(outs[-1], net(x))


def test_sequential_matches_torch_and_propagates_mode() -> None:
    ours = Sequential([Embedding(7, 3, dtype=f64), FlattenConsecutive(4), Linear(12, 8, bias=False, dtype=f64), BatchNorm1d(8, dtype=f64), Tanh(), Linear(8, 7, dtype=f64)])
    ref = nn.Sequential(nn.Embedding(7, 3), nn.Flatten(), nn.Linear(12, 8, bias=False), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 7)).double()
    with torch.no_grad():
        ref[0].weight.copy_(ours[0].weight)
        ref[2].weight.copy_(ours[2].weight.T)
        ref[5].weight.copy_(ours[5].weight.T)
        ref[5].bias.copy_(ours[5].bias)
    assert len(ours.parameters()) == 6 and len(ours) == 6
    ix = torch.randint(0, 7, (10, 4))
    F.cross_entropy(ours(ix), ix[:, 0]).backward()
    F.cross_entropy(ref(ix), ix[:, 0]).backward()
    torch.testing.assert_close(ours[0].weight.grad, ref[0].weight.grad)
    torch.testing.assert_close(ours[2].weight.grad, ref[2].weight.grad.T)
    torch.testing.assert_close(ours[3].weight.grad, ref[3].weight.grad)
    torch.testing.assert_close(ours[5].bias.grad, ref[5].bias.grad)
    ours.eval()
    assert not ours.training and all(not layer.training for layer in ours)
    ref.eval()
    torch.testing.assert_close(ours(ix), ref(ix))
    ours.train()
    assert ours.training and all(layer.training for layer in ours)
