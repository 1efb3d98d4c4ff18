"""The kit's norms and feed-forward networks against torch (forward and every gradient, float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.layers import MLP, FusedLayerNorm, FusedRMSNorm, LayerNorm, RMSNorm, SwiGLU, make_norm, swiglu_hidden
from tests.helpers import assert_same_forward_backward

DT = torch.float64


def randomise(m: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p))
    return m


@pytest.mark.parametrize("cls", [LayerNorm, FusedLayerNorm])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 5), (1, 1, 1)])
def test_layer_norm_matches_torch(cls, bias: bool, shape) -> None:
    C = shape[-1]
    ours = randomise(cls(C, eps=1e-5, bias=bias).double())
    ref = nn.LayerNorm(C, eps=1e-5, bias=bias, dtype=DT)
    ref.load_state_dict(ours.state_dict())  # same names
    assert_same_forward_backward(ours, ref, [torch.randn(shape, dtype=DT) * 3 + 1])


@pytest.mark.parametrize("cls", [RMSNorm, FusedRMSNorm])
@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 5), (3, 1)])
def test_rms_norm_matches_torch(cls, shape) -> None:
    C = shape[-1]
    ours = randomise(cls(C, eps=1e-6).double())
    ref = nn.RMSNorm(C, eps=1e-6, dtype=DT)
    ref.load_state_dict(ours.state_dict())
    assert_same_forward_backward(ours, ref, [torch.randn(shape, dtype=DT)])


def test_make_norm_and_errors() -> None:
    assert type(make_norm("layernorm", 4)) is LayerNorm and make_norm("layernorm", 4, bias=False).bias is None
    assert type(make_norm("rmsnorm", 4, kernels="fused")) is FusedRMSNorm and make_norm("rmsnorm", 4).eps == 1e-6
    with pytest.raises(ValueError, match="unknown norm 'batchnorm'"):
        make_norm("batchnorm", 4)
    with pytest.raises(ValueError, match=r"expects last dimension 4, got shape \(2, 3\)"):
        LayerNorm(4)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="RMSNorm dim must be a positive integer, got 0"):
        RMSNorm(0)


@pytest.mark.parametrize(
    ("activation", "fn"),
    [("relu", nn.ReLU()), ("gelu", nn.GELU()), ("gelu_tanh", nn.GELU(approximate="tanh")), ("silu", nn.SiLU())],
)
@pytest.mark.parametrize("bias", [True, False])
def test_mlp_matches_torch_sequential(activation: str, fn: nn.Module, bias: bool) -> None:
    ours = randomise(MLP(6, 10, activation=activation, bias=bias).double())
    ref = nn.Sequential(nn.Linear(6, 10, bias=bias), fn, nn.Linear(10, 6, bias=bias)).double()
    ref.load_state_dict({k.replace("up", "0").replace("down", "2"): v for k, v in ours.state_dict().items()})

    def grads(m: nn.Module) -> dict[str, torch.Tensor]:
        return {k.replace("0.", "up.").replace("2.", "down."): p.grad for k, p in m.named_parameters()}

    assert_same_forward_backward(
        ours, ref, [torch.randn(2, 5, 6, dtype=DT)],
        grads=(lambda m: {k: p.grad for k, p in m.named_parameters()}, grads),
    )
    assert sum(p.numel() for p in ours.parameters()) == 2 * 6 * 10 + ((10 + 6) if bias else 0)


def test_swiglu_matches_its_formula() -> None:
    ours = randomise(SwiGLU(6, 9).double())
    wg, wu, wd = ours.gate.weight, ours.up.weight, ours.down.weight

    def formula(x: torch.Tensor) -> torch.Tensor:
        return (F.silu(x @ wg.T) * (x @ wu.T)) @ wd.T

    assert_same_forward_backward(ours, formula, [torch.randn(3, 4, 6, dtype=DT)])
    assert sum(p.numel() for p in ours.parameters()) == 3 * 6 * 9


def test_feedforward_errors() -> None:
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        MLP(4, 8, activation="tanh")
    with pytest.raises(ValueError, match="feed-forward hidden_dim must be a positive integer, got 0"):
        SwiGLU(4, 0)


@pytest.mark.parametrize(
    ("dim", "multiple_of", "multiplier", "hidden"),
    [(4096, 256, None, 11008), (5120, 256, None, 13824), (8192, 4096, 1.3, 28672), (64, 4, None, 172), (3, 1, None, 8)],
)
def test_swiglu_hidden_is_llamas(dim: int, multiple_of: int, multiplier, hidden: int) -> None:
    # LLaMA 7B, 13B and (Llama 2) 70B, then toy sizes: 8C/3 rounded up to a multiple
    assert swiglu_hidden(dim, multiple_of, multiplier) == hidden
    assert hidden % multiple_of == 0 and hidden >= int(8 * dim / 3 * (multiplier or 1)) - 1
    with pytest.raises(ValueError, match="swiglu_hidden multiple_of must be a positive integer, got 0"):
        swiglu_hidden(dim, 0)
