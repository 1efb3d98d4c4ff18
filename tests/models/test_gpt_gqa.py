"""GPT with grouped-query attention and a sliding window (chapter 19): configuration checks,
parameters and cache bytes, rolling-cache generation, and mean-pooling K/V heads (uptraining)."""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers import kv_cache_bytes
from dlscratch.models.fused_decoder import FusedDecoder
from dlscratch.models.gpt import GPT, GPTConfig, pool_kv_heads
from dlscratch.models.generation import generate
from dlscratch.models.sampling import sample_logits


def small(**kw) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 11, "block_size": 24, "n_layer": 2, "n_head": 4, "n_embd": 16, **kw})


def test_config_errors_name_both_values() -> None:
    with pytest.raises(ValueError, match=r"n_head=4 must be a multiple of n_kv_head=3"):
        small(n_kv_head=3)
    with pytest.raises(ValueError, match=r"n_kv_head must be a positive integer, got 0"):
        small(n_kv_head=0)
    for bad in (0, -2, 25):
        with pytest.raises(ValueError, match=rf"block_size=24\], got window={bad}"):
            small(window=bad)


def test_default_is_multi_head_and_unchanged() -> None:
    torch.manual_seed(0)
    a = GPT(small())
    torch.manual_seed(0)
    b = GPT(small(n_kv_head=4))
    x = torch.randint(0, 11, (2, 24))
    assert torch.equal(a(x)[0], b(x)[0])
    assert a.blocks[0].attn.num_kv_heads == 4 and a.blocks[0].attn.window is None


@pytest.mark.parametrize("nkv", [1, 2, 4])
def test_parameters_and_cache_bytes_shrink_with_kv_heads(nkv: int) -> None:
    m = GPT(small(n_kv_head=nkv))
    C, L, hs = 16, 2, 4
    assert m.num_parameters() == GPT(small()).num_parameters() - L * 2 * C * (4 - nkv) * hs
    measured = m.start_cache(3)
    assert measured == kv_cache_bytes(L, nkv, hs, 24, batch_size=3, bytes_per_value=4)
    m.stop_cache()


@pytest.mark.parametrize(("nkv", "window"), [(1, 5), (2, 1), (4, 7)])
def test_rolling_cache_generation_equals_full_recomputation(nkv: int, window: int) -> None:
    torch.manual_seed(0)
    m = GPT(small(n_kv_head=nkv, window=window)).double().eval()
    prompt = torch.randint(0, 11, (3, 4))
    for seed in range(2):
        full = generate(m, prompt, 20, generator=torch.Generator().manual_seed(seed), use_cache=False)
        gen, out = torch.Generator().manual_seed(seed), prompt
        with torch.inference_mode():
            nbytes = m.start_cache(3, rolling=True)
            logits = m(prompt)[0]
            for _ in range(20):
                nxt = sample_logits(logits[:, -1], generator=gen)  # (B,)
                out = torch.cat([out, nxt[:, None]], 1)
                logits = m(nxt[:, None])[0]
            m.stop_cache()
        assert torch.equal(out, full)
        assert nbytes == kv_cache_bytes(2, nkv, 4, 24, batch_size=3, bytes_per_value=8, window=window)


def test_pool_kv_heads() -> None:
    torch.manual_seed(0)
    m = GPT(small(bias=True)).double().eval()
    x = torch.randint(0, 11, (2, 24))
    same = pool_kv_heads(m, 4)
    assert torch.equal(same(x)[0], m(x)[0])
    g = pool_kv_heads(m, 2)
    assert g.config.n_kv_head == 2 and g.blocks[0].attn.k_proj.weight.shape == (8, 16)
    w = m.blocks[1].attn.v_proj.weight.view(4, 4, 16)  # (nh, hs, C)
    torch.testing.assert_close(g.blocks[1].attn.v_proj.weight.view(2, 4, 16), (w[0::2] + w[1::2]) / 2)
    b = m.blocks[0].attn.k_proj.bias.view(4, 4)
    torch.testing.assert_close(g.blocks[0].attn.k_proj.bias.view(2, 4), (b[0::2] + b[1::2]) / 2)
    with torch.no_grad():  # heads already equal within each group: pooling changes nothing
        for blk in m.blocks:
            for lin in (blk.attn.k_proj, blk.attn.v_proj):
                lin.weight.view(2, 2, 4, 16)[:, 1] = lin.weight.view(2, 2, 4, 16)[:, 0]
                lin.bias.view(2, 2, 4)[:, 1] = lin.bias.view(2, 2, 4)[:, 0]
    torch.testing.assert_close(pool_kv_heads(m, 2)(x)[0], m(x)[0], atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(pool_kv_heads(pool_kv_heads(m, 2), 1)(x)[0], pool_kv_heads(m, 1)(x)[0])
    with pytest.raises(ValueError, match=r"4 key/value heads cannot be pooled into n_kv_head=3"):
        pool_kv_heads(m, 3)


def test_fused_decoder_with_rolling_caches_equals_one_full_pass() -> None:
    torch.manual_seed(1)
    m = GPT(small(n_kv_head=2, window=4)).double().eval()
    x = torch.randint(0, 11, (2, 24))
    with torch.inference_mode():
        full = m(x)[0]
        f = FusedDecoder(m)
        f.start_cache(2, rolling=True)
        steps = torch.cat([f(x[:, :6])[0]] + [f(x[:, t : t + 1])[0] for t in range(6, 24)], 1)
        f.stop_cache()
    torch.testing.assert_close(steps, full, atol=1e-12, rtol=1e-10)
