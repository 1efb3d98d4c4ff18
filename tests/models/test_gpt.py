"""GPT: config checks, kit composition, causality, written vs fused kernels, KV cache == recomputation, sampling."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers import MLP, Block, FusedLayerNorm, KVCache, LayerNorm, MultiHeadAttention
from dlscratch.models.generation import GenerationTiming, time_generation
from dlscratch.models.gpt import GPT, GPTConfig
from tests.helpers import assert_same_forward_backward

TINY = GPTConfig(vocab_size=13, block_size=16, n_layer=2, n_head=2, n_embd=12)


def tiny(**kw: object) -> GPT:
    return GPT(replace(TINY, **kw)).eval()


# --- config ----------------------------------------------------------------------------------


def test_config_rejects_width_not_divisible_by_heads() -> None:
    with pytest.raises(ValueError, match=r"n_embd=10.*n_head=4"):
        GPTConfig(n_embd=10, n_head=4)


@pytest.mark.parametrize(
    "field, value", [("n_layer", 0), ("block_size", -1), ("vocab_size", 2.5), ("dropout", 1.0), ("kernels", "flash")]
)
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


@pytest.mark.parametrize("kernels", ["written", "fused"])
def test_causality(kernels: str) -> None:
    m = tiny(kernels=kernels)
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
    assert abs(std["blocks.0.attn.q_proj.weight"] - 0.02) < 0.002
    assert abs(std["blocks.3.mlp.up.weight"] - 0.02) < 0.002
    for name in ("blocks.0.attn.out_proj.weight", "blocks.7.mlp.down.weight"):
        assert abs(std[name] - 0.02 / math.sqrt(16)) < 0.0006, name


# --- kit parts, written and fused kernels ----------------------------------------------------


@pytest.mark.parametrize("kernels", ["written", "fused"])
def test_built_from_kit_parts(kernels: str) -> None:
    m = tiny(kernels=kernels, bias=True)
    for block in m.blocks:
        assert isinstance(block, Block) and block.norm_first
        assert isinstance(block.attn, MultiHeadAttention) and block.attn.causal
        assert block.attn.attend == ("sdpa" if kernels == "fused" else "written")
        assert isinstance(block.mlp, MLP) and block.mlp.activation == "gelu"
        assert type(block.norm1) is (FusedLayerNorm if kernels == "fused" else LayerNorm)
    assert m.norm_f.bias is not None and tiny().norm_f.bias is None


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("T", [1, 7, 16])
def test_written_and_fused_kernels_agree_values_and_every_gradient(bias: bool, T: int) -> None:
    a = tiny(bias=bias).double()
    b = tiny(bias=bias, kernels="fused").double()
    b.load_state_dict(a.state_dict())  # the same parameters under the same names
    x = torch.randint(0, 13, (3, T))
    y = torch.randint(0, 13, (3, T))
    assert_same_forward_backward(lambda i: a(i, y)[1], lambda i: b(i, y)[1], [x], modules=(a, b), atol=1e-12)
    torch.testing.assert_close(a(x)[0], b(x)[0], rtol=1e-10, atol=1e-12)


# --- KV cache ---------------------------------------------------------------------------------


def test_kv_cache_bookkeeping_and_overflow() -> None:
    cache = KVCache(1, 2, 4, 3)
    assert cache.nbytes() == 2 * 1 * 2 * 4 * 3 * 4
    k = torch.randn(1, 2, 3, 3)
    ka, va = cache.append(k, 2 * k)
    assert ka.shape == (1, 2, 3, 3) and torch.equal(ka, k) and torch.equal(va, 2 * k) and cache.length == 3
    k2 = torch.randn(1, 2, 1, 3)
    ka, _ = cache.append(k2, k2)
    assert torch.equal(ka, torch.cat([k, k2], dim=2)) and cache.length == 4
    assert torch.equal(cache.k[:, :, :4], ka)  # written into the preallocated buffer
    with pytest.raises(ValueError, match="4 positions"):
        cache.append(k2, k2)
    with pytest.raises(ValueError, match=r"do not fit a cache of \(B, nkv, hs\) = \(1, 2, 3\)"):
        KVCache(1, 2, 8, 3).append(torch.randn(1, 3, 1, 3), torch.randn(1, 3, 1, 3))
    cache.reset()
    assert cache.length == 0


@pytest.mark.parametrize("kernels", ["written", "fused"])
def test_cached_logits_equal_full_forward(kernels: str) -> None:
    m = tiny(kernels=kernels).double()
    x = torch.randint(0, 13, (2, 16))
    full, _ = m(x)
    m.start_cache(2)
    assert m.cache_length() == 0
    parts = [m(x[:, :5])[0]]  # a 5-token prompt, then one token at a time
    parts += [m(x[:, t : t + 1])[0] for t in range(5, 16)]
    assert m.cache_length() == 16
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"17.*block_size=16"):
        m(x[:, :1])
    m.stop_cache()
    assert m.cache_length() == 0 and all(b.attn.cache is None for b in m.blocks)


@pytest.mark.parametrize("kernels", ["written", "fused"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("prompt_len, new", [(1, 15), (4, 10), (15, 1), (16, 5), (3, 30), (20, 3)])
def test_kv_cache_generation_equals_recomputation(kernels: str, seed: int, prompt_len: int, new: int) -> None:
    m = tiny(kernels=kernels)
    idx = torch.randint(0, 13, (3, prompt_len), generator=torch.Generator().manual_seed(100 + seed))
    kw = {"temperature": 1.3, "top_k": 8, "top_p": 0.95}
    a = m.generate(idx, new, generator=torch.Generator().manual_seed(seed), use_cache=True, **kw)
    b = m.generate(idx, new, generator=torch.Generator().manual_seed(seed), use_cache=False, **kw)
    assert a.shape == (3, prompt_len + new)
    assert torch.equal(a[:, :prompt_len], idx)
    assert torch.equal(a, b)
    assert m.cache_length() == 0  # generate drops its caches


def test_generate_uses_the_models_attention_and_restores_training_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import dlscratch.layers.attention.attend as modules

    calls = {"written": 0, "sdpa": 0}
    for name in calls:
        fn = modules.ATTEND[name]
        monkeypatch.setitem(modules.ATTEND, name, lambda *a, _fn=fn, _n=name, **k: (calls.__setitem__(_n, calls[_n] + 1), _fn(*a, **k))[1])
    for kernels in ("written", "fused"):
        m = GPT(replace(TINY, kernels=kernels, dropout=0.3)).train()
        m.generate(torch.zeros(1, 1, dtype=torch.long), 4)
        assert m.training  # restored; the steps ran without dropout
    assert calls["written"] > 0 and calls["sdpa"] > 0


def test_dropout_modules_and_state_dicts_match() -> None:
    assert tiny(dropout=0.0).state_dict().keys() == tiny(dropout=0.1).state_dict().keys()
    assert tiny(dropout=0.1).blocks[0].dropout.p == 0.1 and tiny(dropout=0.1).blocks[0].attn.dropout == 0.1


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
