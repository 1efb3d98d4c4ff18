"""FusedDecoder: the module-free forward pass equals the model's, for GPT's and LLaMA's kinds of parts."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest
import torch
from torch import nn

from dlscratch.layers import MLP, Block, MultiHeadAttention, PositionHook, RMSNorm, SwiGLU
from dlscratch.models import DecoderLM, FusedDecoder
from dlscratch.models.gpt import GPT, GPTConfig

TINY = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=4, n_embd=16)


def randomise(m: nn.Module) -> nn.Module:
    with torch.no_grad():  # non-trivial norm gains and biases, so that a mix-up would show
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m


class LlamaLike(DecoderLM):
    """RMSNorm, SwiGLU, GQA, a sliding window and a rotation hook: the parts chapter 21 uses."""

    def __init__(self, V: int = 11, C: int = 16, block_size: int = 16, attend: str = "written") -> None:
        super().__init__()
        self.config = replace(TINY, vocab_size=V, block_size=block_size, n_embd=C)
        self.tok = nn.Embedding(V, C)
        hook = PositionHook(rotate=lambda x, pos: x * torch.cos(0.1 * pos)[:, None].to(x.dtype))

        def block() -> Block:
            attn = MultiHeadAttention(C, 4, 2, bias=False, causal=True, window=5, attend=attend)
            attn.positions = hook
            return Block(attn, SwiGLU(C, 24), partial(RMSNorm, C))

        self.blocks = nn.ModuleList([block(), block()])
        self.norm_f = RMSNorm(C)
        self.lm_head = nn.Linear(C, V, bias=False)

    def embed(self, idx: torch.Tensor, offset: int) -> torch.Tensor:
        return self.tok(idx)


MODELS = {
    "gpt": lambda: GPT(TINY),
    "gpt-bias-fused": lambda: GPT(replace(TINY, bias=True, kernels="fused")),
    "llama-like": lambda: LlamaLike(),
    "llama-like-sdpa": lambda: LlamaLike(attend="sdpa"),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_logits_equal_the_modules_with_and_without_cache(name: str) -> None:
    m = randomise(MODELS[name]().double()).eval()
    f = FusedDecoder(m)
    x = torch.randint(0, m.config.vocab_size, (2, 16))
    with torch.inference_mode():
        full = m(x)[0]
        torch.testing.assert_close(f(x)[0], full, rtol=1e-12, atol=1e-12)
        f.start_cache(2)
        steps = [f(x[:, :6])[0]] + [f(x[:, t : t + 1])[0] for t in range(6, 16)]
        f.stop_cache()
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-12, atol=1e-12)


def test_runs_the_current_weights() -> None:
    m = GPT(TINY).double().eval()
    f = FusedDecoder(m)
    with torch.no_grad():
        m.norm_f.weight.mul_(2.0)
        m.blocks[0].mlp.up.weight.mul_(-1.0)
    x = torch.randint(0, 13, (1, 5))
    torch.testing.assert_close(f(x)[0], m(x)[0], rtol=1e-12, atol=1e-12)


def test_unknown_parts_run_their_own_forward() -> None:
    m = GPT(TINY).double().eval()
    m.blocks[1].mlp = nn.Sequential(nn.Linear(16, 16), nn.Tanh()).double()  # e.g. a mixture of experts later
    x = torch.randint(0, 13, (2, 7))
    torch.testing.assert_close(FusedDecoder(m)(x)[0], m(x)[0], rtol=1e-12, atol=1e-12)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="FusedDecoder runs a decoder LM of kit Blocks.*got Linear"):
        FusedDecoder(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"17.*block_size=16"):
        FusedDecoder(GPT(TINY))(torch.zeros(1, 17, dtype=torch.long))


def test_generate_through_the_decoder_equals_the_modules() -> None:
    m = GPT(TINY).eval()
    idx = torch.randint(0, 13, (2, 3))
    from dlscratch.models.generation import generate

    a = m.generate(idx, 20, generator=torch.Generator().manual_seed(5))  # FusedDecoder
    b = generate(m, idx, 20, generator=torch.Generator().manual_seed(5))  # the modules
    assert torch.equal(a, b)
    assert isinstance(m.blocks[0].mlp, MLP)
