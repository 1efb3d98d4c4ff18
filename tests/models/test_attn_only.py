"""The attention-only Transformer of chapter 30: GPT-2 twin (MLPs zeroed), causality, head ablation, weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers.attention.functional import merge_heads, split_heads
from dlscratch.models.attn_only import (
    AttnOnlyConfig,
    AttnOnlyTransformer,
    from_gpt2_state_dict,
    gpt2_config,
    to_gpt2_state_dict,
)

transformers = pytest.importorskip("transformers")


def perturbed(cfg: AttnOnlyConfig) -> AttnOnlyTransformer:
    model = AttnOnlyTransformer(cfg).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # norm gains and biases away from 1 and 0
    return model


@pytest.mark.parametrize(("n_layer", "n_head", "n_embd", "T"), [(2, 2, 16, 12), (1, 1, 8, 1), (3, 4, 12, 9)])
def test_matches_gpt2_with_zero_mlps(n_layer: int, n_head: int, n_embd: int, T: int) -> None:
    cfg = AttnOnlyConfig(vocab_size=23, block_size=12, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    ours = perturbed(cfg)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**gpt2_config(cfg))).double()
    assert hf.config._attn_implementation == "eager"
    hf.load_state_dict(to_gpt2_state_dict(ours, hf.state_dict()))
    x, y = torch.randint(0, 23, (3, T)), torch.randint(0, 23, (3, T))
    out = ours(x, y)
    theirs = hf(input_ids=x).logits
    torch.testing.assert_close(out.logits, theirs, atol=1e-10, rtol=1e-8)
    out.loss.backward()
    F.cross_entropy(theirs.flatten(0, 1), y.flatten()).backward()
    hf_grads = from_gpt2_state_dict({k: p.grad for k, p in hf.named_parameters()}, cfg)
    names = [k for k, _ in ours.named_parameters()]
    assert sorted(names) == sorted(hf_grads)
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, hf_grads[name], atol=1e-10, rtol=1e-8, msg=lambda m, n=name: f"{n}: {m}")


def test_state_dict_round_trip() -> None:
    cfg = AttnOnlyConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
    model = perturbed(cfg)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**gpt2_config(cfg))).double()
    back = from_gpt2_state_dict(to_gpt2_state_dict(model, hf.state_dict()), cfg)
    for name, p in model.named_parameters():
        torch.testing.assert_close(back[name], p.detach())


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_causal(positions: str) -> None:
    model = AttnOnlyTransformer(AttnOnlyConfig(vocab_size=13, block_size=10, n_layer=2, n_head=2, n_embd=16, positions=positions)).double()
    x = torch.randint(0, 13, (2, 10))
    x2 = x.clone()
    x2[:, 6] = (x2[:, 6] + 1) % 13
    a, b = model(x).logits, model(x2).logits
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-6


def test_ablation_zeroes_that_heads_output() -> None:
    cfg = AttnOnlyConfig(vocab_size=17, block_size=9, n_layer=2, n_head=3, n_embd=12)
    model = perturbed(cfg)
    x = torch.randint(0, 17, (2, 9))
    ablated = model(x, ablate=[(1, 2), (0, 0)]).logits
    # by hand: each layer, with the ablated head's slice of the output projection's input set to zero
    h = model.wte(x) + model.wpe.weight[:9]
    for layer, (norm, attn) in enumerate(zip(model.norms, model.attns)):
        n = norm(h)
        q, k, v = (split_heads(proj(n), 3) for proj in (attn.q_proj, attn.k_proj, attn.v_proj))
        w = torch.softmax((q @ k.transpose(-2, -1) / 2.0).masked_fill(~torch.ones(9, 9, dtype=torch.bool).tril(), float("-inf")), -1)
        heads = w @ v  # (B, nh, T, hs)
        heads[:, 2 if layer == 1 else 0] = 0.0
        h = h + attn.out_proj(merge_heads(heads))
    torch.testing.assert_close(ablated, model.lm_head(model.norm_f(h)))
    assert (ablated - model(x).logits).abs().max() > 1e-6


def test_returns_attention_weights() -> None:
    model = AttnOnlyTransformer(AttnOnlyConfig(vocab_size=9, block_size=7, n_layer=2, n_head=2, n_embd=8))
    out = model(torch.randint(0, 9, (3, 7)), return_weights=True)
    assert len(out.weights) == 2
    for w in out.weights:
        assert w.shape == (3, 2, 7, 7)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 7))
        assert torch.all(w.triu(1) == 0)
    assert model(torch.randint(0, 9, (1, 7))).weights is None


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="n_embd=10 must be divisible by n_head=3"):
        AttnOnlyConfig(n_embd=10, n_head=3)
    with pytest.raises(ValueError, match="positions must be 'learned' or 'rope', got positions='alibi'"):
        AttnOnlyConfig(positions="alibi")
    with pytest.raises(ValueError, match="n_layer must be a positive integer"):
        AttnOnlyConfig(n_layer=0)
    model = AttnOnlyTransformer(AttnOnlyConfig(vocab_size=9, block_size=6, n_layer=2, n_head=2, n_embd=8))
    with pytest.raises(ValueError, match=r"ablate: expected \(layer, head\).*got \(2, 0\)"):
        model(torch.zeros(1, 4, dtype=torch.long), ablate=[(2, 0)])
    with pytest.raises(ValueError, match="T=7 exceeds block_size=6"):
        model(torch.zeros(1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match=r"idx must be \(B, T\)"):
        model(torch.zeros(7, dtype=torch.long))
    with pytest.raises(ValueError, match="GPT-2 has learned positions; got a config with positions='rope'"):
        gpt2_config(AttnOnlyConfig(positions="rope"))
