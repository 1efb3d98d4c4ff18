"""MoELM: one expert equals chapter 21's LLaMA, the loss carries the auxiliary losses, parameters, bad input."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers.moe import MoE, load_balancing_loss, router_z_loss
from dlscratch.models.llama import LLaMA, LlamaConfig
from dlscratch.models.moe_lm import MoELM, MoELMConfig, active_parameters

SMALL = dict(vocab_size=19, block_size=12, n_layer=2, n_head=4, n_kv_head=2, n_embd=16, ffn_hidden=24)


def _dense_keys(name: str) -> str:
    return name.replace("mlp.experts.0.", "mlp.")


def test_one_expert_equals_llama() -> None:
    moe = MoELM(MoELMConfig(**SMALL, num_experts=1, top_k=1, aux_loss_coef=0.01, z_loss_coef=0.001)).double()
    dense = LLaMA(LlamaConfig(**SMALL)).double()
    dense.load_state_dict({_dense_keys(k): v for k, v in moe.state_dict().items() if "router" not in k})
    x, y = torch.randint(0, 19, (3, 12)), torch.randint(0, 19, (3, 12))
    (a, loss_a), (b, loss_b) = moe(x, y), dense(x, y)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    z = sum(router_z_loss(m.routing.logits) for m in moe.moe_layers())
    torch.testing.assert_close(loss_a, loss_b + 2 * 0.01 + 0.001 * z)  # L_bal = 1 with one expert
    (a.sin().sum()).backward()
    (b.sin().sum()).backward()
    grads = dict(dense.named_parameters())
    for name, p in moe.named_parameters():
        if "router" not in name:
            torch.testing.assert_close(p.grad, grads[_dense_keys(name)].grad, atol=1e-12, rtol=0)


def test_loss_is_cross_entropy_plus_every_layers_aux_loss() -> None:
    m = MoELM(MoELMConfig(**SMALL, num_experts=4, top_k=2, gating="mixtral", z_loss_coef=0.01))
    x, y = torch.randint(0, 19, (2, 12)), torch.randint(0, 19, (2, 12))
    logits, loss = m(x, y)
    aux = sum(0.01 * load_balancing_loss(l.routing.probs, l.routing.experts) + 0.01 * router_z_loss(l.routing.logits) for l in m.moe_layers())
    torch.testing.assert_close(loss, F.cross_entropy(logits.flatten(0, 1), y.flatten()) + aux)
    loss.backward()
    assert all(l.router.weight.grad.abs().sum() > 0 for l in m.moe_layers())
    assert m(x)[1] is None


def test_parameters_total_and_active() -> None:
    c = MoELMConfig(**SMALL, num_experts=4, top_k=2)
    m = MoELM(c)
    C, F_, E, k, L = c.n_embd, c.ffn_hidden, 4, 2, c.n_layer
    total = sum(p.numel() for p in m.parameters())
    dense_total = sum(p.numel() for p in LLaMA(LlamaConfig(**SMALL)).parameters())
    assert total == dense_total + L * ((E - 1) * 3 * C * F_ + E * C)  # E experts and a router instead of one FFN
    assert active_parameters(m) == total - L * (E - k) * 3 * C * F_
    assert active_parameters(LLaMA(LlamaConfig(**SMALL))) == dense_total
    assert all(isinstance(l, MoE) for l in m.moe_layers())


def test_cached_generation_equals_full_recomputation() -> None:
    m = MoELM(MoELMConfig(**SMALL, num_experts=3, top_k=2))
    prompt = torch.randint(0, 19, (2, 3))
    a = m.generate(prompt, 6, temperature=1.0, generator=torch.Generator().manual_seed(0))
    b = m.generate(prompt, 6, temperature=1.0, generator=torch.Generator().manual_seed(0), use_cache=False)
    assert torch.equal(a, b)


def test_config_bad_input_names_the_values() -> None:
    with pytest.raises(ValueError, match=r"top_k=3.*num_experts=2"):
        MoELMConfig(**SMALL, num_experts=2, top_k=3)
    with pytest.raises(ValueError, match=r"capacity_factor=-0.5"):
        MoELMConfig(**SMALL, capacity_factor=-0.5)
    with pytest.raises(ValueError, match="gating='soft'"):
        MoELMConfig(**SMALL, gating="soft")
    assert asdict(MoELMConfig(**SMALL))["num_experts"] == 4
