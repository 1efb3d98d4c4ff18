"""BlockLM: GPT with a choice of norm placement, norm and feed-forward network (chapter 20)."""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers import MLP, FusedRMSNorm, LayerNorm, RMSNorm, SwiGLU, swiglu_hidden
from dlscratch.models.block_lm import BlockLM, BlockLMConfig
from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.utils import seed_everything


def test_defaults_build_gpt() -> None:
    seed_everything(3)
    gpt = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16))
    seed_everything(3)
    ours = BlockLM(BlockLMConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16))
    a, b = gpt.state_dict(), ours.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same weights, same draws
    x = torch.randint(0, 11, (3, 16))
    assert torch.equal(gpt(x)[0], ours(x)[0])
    assert ours.num_parameters() == gpt.num_parameters() and ours.lm_head.weight is ours.wte.weight


def test_post_ln_normalises_the_sum_and_has_no_final_norm() -> None:
    m = BlockLM(BlockLMConfig(vocab_size=7, block_size=8, n_layer=3, n_head=2, n_embd=8, norm_first=False)).double()
    assert isinstance(m.norm_f, torch.nn.Identity) and all(not b.norm_first for b in m.blocks)
    h = m.embed(torch.randint(0, 7, (2, 8)), 0)
    for block in m.blocks:
        h = block(h, is_causal=True)
    # each block ends with a LayerNorm of gain 1, bias 0 (no biases here): zero mean, unit variance per token
    torch.testing.assert_close(h.mean(-1), torch.zeros(2, 8, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(h.var(-1, correction=0), torch.ones(2, 8, dtype=torch.float64), atol=1e-4, rtol=0)


@pytest.mark.parametrize("ffn", ["relu", "gelu", "gelu_tanh", "silu", "swiglu"])
@pytest.mark.parametrize("norm_first", [True, False])
def test_parts_gradients_and_causality(ffn: str, norm_first: bool) -> None:
    cfg = BlockLMConfig(vocab_size=9, block_size=8, n_layer=2, n_head=2, n_embd=12, ffn=ffn, norm="rmsnorm",
                        norm_first=norm_first, init="xavier", ffn_multiple_of=4)
    m = BlockLM(cfg).double()
    mlp = m.blocks[0].mlp
    assert isinstance(mlp, SwiGLU if ffn == "swiglu" else MLP) and isinstance(m.blocks[0].norm1, RMSNorm)
    assert cfg.hidden == (swiglu_hidden(12, 4) if ffn == "swiglu" else 48) == mlp.up.out_features
    x, y = torch.randint(0, 9, (2, 8)), torch.randint(0, 9, (2, 8))
    logits, loss = m(x, y)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    x2 = x.clone()
    x2[:, 5] = (x2[:, 5] + 1) % 9
    assert torch.equal(m(x2)[0][:, :5], logits[:, :5].detach())


def test_xavier_init_and_fused_kernels() -> None:
    seed_everything(0)
    m = BlockLM(BlockLMConfig(n_layer=1, n_embd=32, n_head=2, init="xavier", norm="rmsnorm", kernels="fused"))
    w = m.blocks[0].mlp.up.weight  # (4C, C), Xavier-uniform: bound sqrt(6 / (C + 4C))
    assert w.abs().max() <= (6 / (32 + 128)) ** 0.5 and w.std() > 0.1
    assert m.wte.weight.std() < 0.03 and isinstance(m.norm_f, FusedRMSNorm)
    assert isinstance(BlockLM(BlockLMConfig(n_layer=1, n_embd=32, n_head=2)).norm_f, LayerNorm)


def test_ffn_parameters_and_explicit_width() -> None:
    m = BlockLM(BlockLMConfig(n_layer=2, n_embd=16, n_head=2, ffn="swiglu", ffn_hidden=40))
    assert m.ffn_parameters() == 2 * 3 * 16 * 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": "batchnorm"}, "norm must be one of"),
        ({"ffn": "tanh"}, "ffn must be one of .* got ffn='tanh'"),
        ({"init": "kaiming"}, "init must be one of .* got init='kaiming'"),
        ({"ffn_hidden": -1}, "ffn_hidden=-1"),
        ({"n_embd": 30, "n_head": 4}, "n_embd=30 must be divisible by n_head=4"),
        ({"kernels": "triton"}, "kernels='triton'"),
    ],
)
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BlockLMConfig(**kwargs)
