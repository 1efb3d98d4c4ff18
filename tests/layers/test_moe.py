"""Mixture of experts: transformers' MixtralSparseMoeBlock as the twin (float64, output, router logits,
every gradient), one expert equal to the dense FFN, the gating and capacity against independent
formulations, the auxiliary losses, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.layers import MLP, SwiGLU
from dlscratch.layers.moe import (
    MoE,
    drop_fraction,
    expert_capacity,
    load_balancing_loss,
    mixtral_state_dict,
    route,
    router_z_loss,
)
from tests.helpers import assert_same_forward_backward

transformers = pytest.importorskip("transformers")
from transformers.models.mixtral import modeling_mixtral  # noqa: E402


def _router_in_dtype(self, h):  # MixtralTopKRouter.forward without its float32 softmax (same formula)
    h = h.reshape(-1, self.hidden_dim)
    logits = torch.nn.functional.linear(h, self.weight)  # (N, E)
    top, idx = logits.softmax(dim=-1).topk(self.top_k, dim=-1)  # (N, k)
    return logits, top / top.sum(dim=-1, keepdim=True), idx


def _randomise(m: torch.nn.Module, scale: float = 0.3) -> torch.nn.Module:
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(scale * torch.randn_like(p))
    return m


@pytest.mark.parametrize(("E", "k", "shape"), [(4, 2, (3, 7)), (8, 2, (2, 5)), (3, 1, (1, 1)), (2, 2, (2, 9)), (5, 3, (1, 6))])
def test_moe_equals_mixtral_sparse_moe_block(monkeypatch: pytest.MonkeyPatch, E: int, k: int, shape: tuple[int, int]) -> None:
    monkeypatch.setattr(modeling_mixtral.MixtralTopKRouter, "forward", _router_in_dtype)
    C, F = 12, 10
    cfg = transformers.MixtralConfig(hidden_size=C, intermediate_size=F, num_local_experts=E, num_experts_per_tok=k)
    ref = modeling_mixtral.MixtralSparseMoeBlock(cfg).double()
    ours = _randomise(MoE(C, F, E, k, gating="mixtral").double())
    ref.load_state_dict(mixtral_state_dict(ours))
    logits = {}
    ref.gate.register_forward_hook(lambda m, i, o: logits.__setitem__("ref", o[0]))
    x = torch.randn(*shape, C, dtype=torch.float64)
    assert_same_forward_backward(
        ours, ref, [x], grads=(lambda m: mixtral_state_dict(m, grads=True), lambda m: {n: p.grad for n, p in m.named_parameters()})
    )
    torch.testing.assert_close(ours.routing.logits, logits["ref"], atol=1e-12, rtol=0)


def test_load_balancing_loss_is_hf_loss_over_k() -> None:
    logits = torch.randn(50, 6, dtype=torch.float64)
    for k in (1, 2, 3):
        probs, _, experts = route(logits, k)
        theirs = modeling_mixtral.load_balancing_loss_func((logits.float(),), 6, k)  # counts per token: k times ours
        torch.testing.assert_close(load_balancing_loss(probs, experts).float() * k, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("activation", ["swiglu", "gelu"])
@pytest.mark.parametrize("gating", ["switch", "mixtral"])
def test_one_expert_equals_the_dense_ffn(activation: str, gating: str) -> None:
    C, F = 8, 20
    moe = _randomise(MoE(C, F, 1, 1, gating=gating, activation=activation, capacity_factor=1.0).double())
    dense = SwiGLU(C, F).double() if activation == "swiglu" else MLP(C, F, activation="gelu", bias=False).double()
    dense.load_state_dict(moe.experts[0].state_dict())
    x = torch.randn(3, 5, C, dtype=torch.float64)
    assert_same_forward_backward(moe, dense, [x], modules=(moe.experts[0], dense))
    assert moe.routing.dropped == 0


def _dense_mixture(moe: MoE, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, weighted by the gate where chosen: the same mixture without dispatch."""
    h = x.reshape(-1, x.size(-1))
    probs = moe.router(h).softmax(-1)  # (N, E)
    top, idx = probs.topk(moe.top_k, dim=-1)
    if moe.gating == "mixtral":
        top = top / top.sum(-1, keepdim=True)
    weights = torch.zeros_like(probs).scatter(1, idx, top)  # (N, E), zero for the unchosen
    outs = torch.stack([e(h) for e in moe.experts], dim=1)  # (N, E, C)
    return (weights[..., None] * outs).sum(1).view_as(x)


@pytest.mark.parametrize(("E", "k", "gating"), [(4, 1, "switch"), (4, 2, "switch"), (6, 3, "mixtral"), (2, 1, "mixtral")])
def test_dispatch_equals_the_dense_mixture(E: int, k: int, gating: str) -> None:
    moe = _randomise(MoE(7, 9, E, k, gating=gating, activation="relu").double())
    x = torch.randn(2, 11, 7, dtype=torch.float64)
    assert_same_forward_backward(moe, lambda t: _dense_mixture(moe, t), [x], modules=None)


def test_switch_gate_is_the_router_probability() -> None:
    logits = torch.randn(10, 4)
    probs, gates, experts = route(logits, 1, "switch")
    torch.testing.assert_close(gates[:, 0], logits.softmax(-1).max(-1).values)
    _, gates2, experts2 = route(logits, 2, "mixtral")  # softmax over the top-2 logits
    torch.testing.assert_close(gates2, logits.gather(1, experts2).softmax(-1))


@pytest.mark.parametrize(("E", "k", "cf"), [(4, 1, 1.0), (4, 2, 0.5), (3, 2, 1.25), (4, 1, 0.1)])
def test_capacity_drops_the_latest_assignments_first_choices_first(E: int, k: int, cf: float) -> None:
    moe = _randomise(MoE(6, 8, E, k, capacity_factor=cf, activation="relu").double())
    with torch.no_grad():
        moe.router.weight[0] += 2.0  # an overloaded expert
    x = torch.randn(3, 8, 6, dtype=torch.float64)
    y = moe(x)
    # independent: walk the assignments in priority order (choice rank, then token), one at a time
    h = x.reshape(-1, 6)
    _, gates, experts = route(moe.router(h), k, "switch")
    cap = math.ceil(cf * k * h.size(0) / E)
    taken, want, dropped = [0] * E, torch.zeros_like(h), 0
    for j in range(k):
        for n in range(h.size(0)):
            e = int(experts[n, j])
            if taken[e] < cap:
                taken[e] += 1
                want[n] += gates[n, j] * moe.experts[e](h[n : n + 1])[0]
            else:
                dropped += 1
    torch.testing.assert_close(y.reshape(-1, 6), want, atol=1e-12, rtol=1e-10)
    assert moe.routing.dropped == dropped
    assert drop_fraction(experts, E, cf) == pytest.approx(dropped / experts.numel())


def test_expert_capacity_and_drop_fraction_by_hand() -> None:
    assert expert_capacity(100, 4, 1, 1.0) == 25
    assert expert_capacity(100, 4, 2, 1.25) == 63  # ceil(62.5)
    everyone_to_one = torch.zeros(64, 1, dtype=torch.long)
    assert drop_fraction(everyone_to_one, 8, 1.0) == pytest.approx(7 / 8)
    balanced = torch.arange(64).remainder(8)[:, None]
    assert drop_fraction(balanced, 8, 1.0) == 0.0


def test_load_balancing_loss_is_one_at_uniform_load_and_e_at_collapse() -> None:
    E, N = 4, 40
    uniform = torch.full((N, E), 1 / E)
    assert load_balancing_loss(uniform, torch.arange(N).remainder(E)[:, None]).item() == pytest.approx(1.0)
    collapsed = torch.zeros(N, E)
    collapsed[:, 2] = 1.0
    assert load_balancing_loss(collapsed, torch.full((N, 1), 2)).item() == pytest.approx(E)


def test_router_z_loss_by_its_formula() -> None:
    z = torch.randn(9, 5, dtype=torch.float64)
    want = sum(math.log(sum(math.exp(v) for v in row)) ** 2 for row in z.tolist()) / 9
    assert router_z_loss(z).item() == pytest.approx(want, rel=1e-12)


def test_aux_loss_holds_both_terms_and_trains_the_router() -> None:
    moe = MoE(8, 6, 4, 2, aux_loss_coef=0.01, z_loss_coef=0.001).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    moe(x)
    r = moe.routing
    want = 0.01 * load_balancing_loss(r.probs, r.experts) + 0.001 * router_z_loss(r.logits)
    torch.testing.assert_close(moe.aux_loss.detach(), want)
    moe.aux_loss.backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    assert r.tokens_per_expert.sum().item() == 2 * 10


def test_bad_input_names_the_values() -> None:
    with pytest.raises(ValueError, match=r"top_k=5.*num_experts=4"):
        MoE(8, 8, 4, 5)
    with pytest.raises(ValueError, match=r"top_k=3.*num_experts=2"):
        route(torch.randn(3, 2), 3)
    for cf in (0.0, -1.0):
        with pytest.raises(ValueError, match=rf"> 0.*capacity_factor={cf}"):
            MoE(8, 8, 4, 1, capacity_factor=cf)
    with pytest.raises(ValueError, match=r"capacity_factor=0"):
        expert_capacity(10, 2, 1, 0)
    with pytest.raises(ValueError, match="gating='top'"):
        MoE(8, 8, 4, 1, gating="top")
    with pytest.raises(ValueError, match="activation='tanh'"):
        MoE(8, 8, 4, 1, activation="tanh")
    with pytest.raises(ValueError, match="activation='swiglu'"):
        mixtral_state_dict(MoE(8, 8, 2, 1, activation="gelu"))
