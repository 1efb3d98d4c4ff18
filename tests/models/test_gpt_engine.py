"""GPTEngine: the module-free forward pass equals GPT.forward, with and without a KV cache."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from dlscratch.models.generation import generate
from dlscratch.models.gpt import GPT, GPTConfig
from dlscratch.models.gpt_engine import GPTEngine

TINY = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=12)


def model(**kw: object) -> GPT:
    torch.manual_seed(0)
    m = GPT(replace(TINY, **kw)).double().eval()
    with torch.no_grad():  # non-trivial LayerNorm gains and biases, so that a mix-up would show
        for name, p in m.named_parameters():
            if name.endswith((".bias", "ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.add_(0.3 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("fast", [False, True])
def test_engine_logits_equal_module_logits(bias: bool, fast: bool) -> None:
    m = model(bias=bias, fast_attention=fast)
    x = torch.randint(0, 13, (3, 16))
    with torch.inference_mode():
        torch.testing.assert_close(GPTEngine(m)(x)[0], m(x)[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [False, True])
def test_engine_with_cache_equals_one_full_pass(bias: bool) -> None:
    m = model(bias=bias)
    e = GPTEngine(m)
    x = torch.randint(0, 13, (2, 16))
    with torch.inference_mode():
        full = m(x)[0]
        cache = e.new_kv_cache(2)
        chunks = [(0, 5), (5, 6), (6, 9), (9, 16)]  # a prompt, one token, then chunks (offset masks)
        parts = [e(x[:, a:b], kv_cache=cache)[0] for a, b in chunks]
        assert cache.length == 16
        torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-12, atol=1e-12)
        with pytest.raises(ValueError, match=r"17.*block_size=16"):
            e(x[:, :1], kv_cache=cache)


def test_engine_uses_the_models_current_weights() -> None:
    m = model()
    e = GPTEngine(m)
    x = torch.randint(0, 13, (2, 10))
    with torch.no_grad():
        m.h[1].mlp.c_fc.weight.mul_(2.0)
        m.wte.weight.add_(0.1)
    with torch.inference_mode():
        torch.testing.assert_close(e(x)[0], m(x)[0], rtol=1e-12, atol=1e-12)


def test_engine_ignores_dropout_like_eval_mode() -> None:
    m = model(dropout=0.5).train()
    x = torch.randint(0, 13, (2, 10))
    with torch.inference_mode():
        got = GPTEngine(m)(x)[0]
        m.eval()
        torch.testing.assert_close(got, m(x)[0], rtol=1e-12, atol=1e-12)


def test_engine_rejects_other_models_and_long_inputs() -> None:
    with pytest.raises(ValueError, match="GPTEngine runs a dlscratch GPT, got Linear"):
        GPTEngine(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block_size=16"):
        GPTEngine(model())(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("use_cache", [True, False])
def test_gpt_generate_through_the_engine_equals_the_module_path(use_cache: bool) -> None:
    m = model()
    idx = torch.randint(0, 13, (3, 4), generator=torch.Generator().manual_seed(1))
    kw = {"temperature": 0.9, "top_k": 6, "use_cache": use_cache}
    a = m.generate(idx, 20, generator=torch.Generator().manual_seed(5), **kw)  # GPTEngine
    b = generate(m, idx, 20, generator=torch.Generator().manual_seed(5), **kw)  # the modules
    assert torch.equal(a, b)
