"""GPT: config checks, causality, both attention paths, KV cache == recomputation, sampling filters."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers.attention.kv_cache import KVCache, offset_causal_mask
from dlscratch.models.generation import GenerationTiming, time_generation
from dlscratch.models.gpt import GPT, Block, CausalSelfAttention, FastCausalSelfAttention, GPTConfig, dropout_layer

TINY = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=12)


def tiny(**kw: object) -> GPT:
    return GPT(replace(TINY, **kw)).eval()


# --- config ----------------------------------------------------------------------------------


def test_config_rejects_width_not_divisible_by_heads() -> None:
    with pytest.raises(ValueError, match=r"n_embd=10.*n_head=4"):
        GPTConfig(n_embd=10, n_head=4)


@pytest.mark.parametrize("field, value", [("n_layer", 0), ("block_size", -1), ("vocab_size", 2.5), ("dropout", 1.0)])
def test_config_rejects_bad_sizes(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        GPTConfig(**{field: value})


def test_presets() -> None:
    g = GPTConfig.gpu()
    assert (g.n_layer, g.n_head, g.n_embd, g.block_size, g.dropout) == (6, 6, 384, 256, 0.2)
    r = GPTConfig.reference_cpu()
    assert (r.n_layer, r.n_head, r.n_embd, r.block_size, r.dropout) == (4, 4, 128, 64, 0.0)
    assert GPTConfig.cpu(vocab_size=50).vocab_size == 50


def test_parameter_count_formula() -> None:
    c = GPTConfig(vocab_size=65, block_size=64, n_layer=3, n_head=4, n_embd=32)
    m = GPT(c)
    V, T, L, C = 65, 64, 3, 32
    expected = V * C + T * C + L * (2 * C + 4 * C * C + 8 * C * C) + C  # no biases; LN gains only
    assert m.num_parameters(non_embedding=False) == expected
    assert m.num_parameters() == expected - T * C


# --- forward ---------------------------------------------------------------------------------


def test_sequence_longer_than_block_size_is_rejected() -> None:
    m = tiny()
    with pytest.raises(ValueError, match=r"17.*block_size=16"):
        m(torch.zeros(1, 17, dtype=torch.long))


def test_loss_is_cross_entropy_and_starts_near_log_vocab() -> None:
    m = tiny()
    x = torch.randint(0, 13, (4, 16))
    y = torch.randint(0, 13, (4, 16))
    logits, loss = m(x, y)
    assert logits.shape == (4, 16, 13)
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 13), y.reshape(-1)))
    assert abs(loss.item() - math.log(13)) < 0.1  # small initial weights: nearly uniform predictions


@pytest.mark.parametrize("fast", [True, False])
def test_causality(fast: bool) -> None:
    m = tiny(fast_attention=fast)
    x = torch.randint(0, 13, (2, 16))
    base, _ = m(x)
    for t in range(15):
        x2 = x.clone()
        x2[:, t + 1] = (x2[:, t + 1] + 1) % 13
        out, _ = m(x2)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
        assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :])


def test_weight_tying_shares_storage() -> None:
    m = tiny()
    assert m.lm_head.weight is m.wte.weight
    assert m.lm_head.weight.data_ptr() == m.wte.weight.data_ptr()
    names = [n for n, _ in m.named_parameters()]
    assert "lm_head.weight" not in names  # counted once


def test_gpt2_initialisation() -> None:
    c = GPTConfig(vocab_size=65, block_size=64, n_layer=8, n_head=4, n_embd=256)
    m = GPT(c)
    std = {n: p.std().item() for n, p in m.named_parameters() if p.dim() == 2}
    assert abs(std["h.0.attn.c_attn.weight"] - 0.02) < 0.002
    assert abs(std["h.3.mlp.c_fc.weight"] - 0.02) < 0.002
    for name in ("h.0.attn.c_proj.weight", "h.7.mlp.c_proj.weight"):
        assert abs(std[name] - 0.02 / math.sqrt(16)) < 0.0006, name


# --- the two attention paths -----------------------------------------------------------------


@pytest.mark.parametrize("T", [1, 5, 16])
@pytest.mark.parametrize("n_head", [1, 3])
def test_written_attention_equals_sdpa_values_and_gradients(T: int, n_head: int) -> None:
    cfg = GPTConfig(vocab_size=7, block_size=16, n_layer=1, n_head=n_head, n_embd=9 * n_head, bias=True)
    ours = CausalSelfAttention(cfg).double()
    fast = FastCausalSelfAttention(cfg).double()
    fast.load_state_dict(ours.state_dict())
    x = torch.randn(2, T, cfg.n_embd, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = ours(xa), fast(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-12)
    g = torch.randn_like(ya)
    (ya * g).sum().backward()
    (yb * g).sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-12)
    for (n, pa), (_, pb) in zip(ours.named_parameters(), fast.named_parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-10, atol=1e-12, msg=lambda m, n=n: f"{n}: {m}")


def test_whole_model_paths_agree() -> None:
    a = tiny(fast_attention=False).double()
    b = tiny(fast_attention=True).double()
    b.load_state_dict(a.state_dict())
    x = torch.randint(0, 13, (3, 16))
    torch.testing.assert_close(a(x)[0], b(x)[0], rtol=1e-10, atol=1e-12)
    assert isinstance(a.h[0].attn, CausalSelfAttention) and not isinstance(a.h[0].attn, FastCausalSelfAttention)
    assert isinstance(b.h[0], Block) and isinstance(b.h[0].attn, FastCausalSelfAttention)


# --- KV cache ---------------------------------------------------------------------------------


def test_offset_causal_mask() -> None:
    torch.testing.assert_close(offset_causal_mask(4, 4), torch.ones(4, 4, dtype=torch.bool).tril())
    assert offset_causal_mask(1, 7).all()
    m = offset_causal_mask(2, 5)
    assert m.tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    with pytest.raises(ValueError, match="T=3, S=2"):
        offset_causal_mask(3, 2)


def test_kv_cache_bookkeeping_and_overflow() -> None:
    cache = KVCache(2, 1, 2, 4, 3)
    assert cache.nbytes() == 2 * 2 * 1 * 2 * 4 * 3 * 4
    k = torch.randn(1, 2, 3, 3)
    ka, va = cache.update(0, k, k)
    assert ka.shape == (1, 2, 3, 3) and torch.equal(ka, k)
    cache.advance(3)
    with pytest.raises(ValueError, match="4 positions"):
        cache.update(0, torch.randn(1, 2, 2, 3), torch.randn(1, 2, 2, 3))


@pytest.mark.parametrize("fast", [True, False])
def test_cached_logits_equal_full_forward(fast: bool) -> None:
    m = tiny(fast_attention=fast).double()
    x = torch.randint(0, 13, (2, 16))
    full, _ = m(x)
    cache = m.new_kv_cache(2)
    parts = [m(x[:, :5], kv_cache=cache)[0]]  # a 5-token prompt, then one token at a time
    parts += [m(x[:, t : t + 1], kv_cache=cache)[0] for t in range(5, 16)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"17.*block_size=16"):
        m(x[:, :1], kv_cache=cache)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("prompt_len, new", [(1, 15), (4, 10), (15, 1), (16, 5), (3, 30)])
def test_kv_cache_generation_equals_recomputation(fast: bool, seed: int, prompt_len: int, new: int) -> None:
    m = tiny(fast_attention=fast)
    idx = torch.randint(0, 13, (3, prompt_len), generator=torch.Generator().manual_seed(100 + seed))
    kw = {"temperature": 1.3, "top_k": 8, "top_p": 0.95}
    a = m.generate(idx, new, generator=torch.Generator().manual_seed(seed), use_cache=True, **kw)
    b = m.generate(idx, new, generator=torch.Generator().manual_seed(seed), use_cache=False, **kw)
    assert a.shape == (3, prompt_len + new)
    assert torch.equal(a[:, :prompt_len], idx)
    assert torch.equal(a, b)


def test_kv_cache_update_writes_into_the_buffers_of_its_layer() -> None:
    cache = KVCache(3, 2, 2, 6, 4)
    k1, v1 = torch.randn(2, 2, 2, 4), torch.randn(2, 2, 2, 4)
    cache.update(1, k1, v1)
    cache.advance(2)
    k2, v2 = torch.randn(2, 2, 1, 4), torch.randn(2, 2, 1, 4)
    ks, vs = cache.update(1, k2, v2)
    torch.testing.assert_close(ks, torch.cat([k1, k2], dim=2), rtol=0, atol=0)
    torch.testing.assert_close(vs, torch.cat([v1, v2], dim=2), rtol=0, atol=0)
    torch.testing.assert_close(cache.k[1, :, :, :3], ks, rtol=0, atol=0)  # stored in the big buffer
    assert cache.k[0].abs().sum() == 0 and cache.k[2].abs().sum() == 0  # other layers untouched
    assert cache.k[1, :, :, 3:].abs().sum() == 0


def test_dropout_layer_is_identity_at_zero_and_state_dicts_match() -> None:
    assert isinstance(dropout_layer(0.0), torch.nn.Identity)
    d = dropout_layer(0.25)
    assert isinstance(d, torch.nn.Dropout) and d.p == 0.25
    assert tiny(dropout=0.0).state_dict().keys() == tiny(dropout=0.1).state_dict().keys()


def test_time_generation_reports_both_ways_and_checks_its_inputs() -> None:
    m = tiny(block_size=21)
    timing = time_generation(m, n_tokens=20, rounds=1)
    assert isinstance(timing, GenerationTiming) and timing.n_tokens == 20
    assert timing.cached_seconds > 0 and timing.full_seconds > 0
    assert timing.speedup == pytest.approx(timing.full_seconds / timing.cached_seconds)
    with pytest.raises(ValueError, match="block_size >= n_tokens \\+ 1 = 22"):
        time_generation(m, n_tokens=21)
    with pytest.raises(ValueError, match="rounds"):
        time_generation(m, n_tokens=5, rounds=0)


def test_generation_is_reproducible_with_a_seed() -> None:
    m = tiny()
    idx = torch.zeros(2, 1, dtype=torch.long)
    a = m.generate(idx, 12, generator=torch.Generator().manual_seed(7))
    b = m.generate(idx, 12, generator=torch.Generator().manual_seed(7))
    c = m.generate(idx, 12, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- sampling through generate (the samplers themselves: tests/models/test_sampling.py) ----------


def test_top_k_one_is_greedy() -> None:
    m = tiny()
    idx = torch.zeros(1, 1, dtype=torch.long)
    assert torch.equal(m.generate(idx, 10, top_k=1), m.generate(idx, 10, temperature=0.0))
