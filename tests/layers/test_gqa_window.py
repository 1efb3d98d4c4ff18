"""Chapter 19's kit: banded sliding-window attention equal to the masked one (values and every
gradient), the rolling-buffer KV cache equal to full recomputation, the cache-size formula
against measured bytes, and the receptive field of windowed stacks."""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers import (
    MultiHeadAttention,
    PositionHook,
    RollingKVCache,
    attend_banded,
    attend_written,
    band_block_mask,
    kv_cache_bytes,
    measure_receptive_field,
    start_kv_caches,
    stop_kv_caches,
)
from tests.helpers import assert_same_forward_backward

DT = torch.float64


def mha(C: int, nh: int, nkv: int, **kw) -> MultiHeadAttention:
    m = MultiHeadAttention(C, nh, nkv, dtype=DT, causal=True, **kw)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) / C**0.5)
    return m


@pytest.mark.parametrize(("T", "w"), [(10, 3), (12, 4), (2, 5), (5, 5), (1, 1), (7, 1), (9, 8)])
@pytest.mark.parametrize("nkv", [1, 2, 4])
def test_banded_equals_masked_attention_with_every_gradient(T: int, w: int, nkv: int) -> None:
    banded = mha(12, 4, nkv, window=w, attend="banded")
    written = mha(12, 4, nkv, window=w, attend="written")
    written.load_state_dict(banded.state_dict())
    x = torch.randn(2, T, 12, dtype=DT)
    assert_same_forward_backward(lambda x: banded(x)[0], lambda x: written(x)[0], [x], modules=(banded, written))


@pytest.mark.parametrize(("T", "w"), [(11, 4), (3, 6)])
def test_attend_banded_function_equals_attend_written(T: int, w: int) -> None:
    q, k, v = (torch.randn(2, 3, T, 5, dtype=DT) for _ in range(3))
    kw = {"mask": None, "causal": True, "offset": 0, "window": w, "bias": None, "dropout_p": 0.0}
    assert_same_forward_backward(lambda q, k, v: attend_banded(q, k, v, **kw)[0],
                                 lambda q, k, v: attend_written(q, k, v, **kw)[0], [q, k, v])


def test_band_block_mask_is_the_window_in_block_coordinates() -> None:
    n, w = 3, 4
    m = band_block_mask(n, w)
    for b in range(n):
        for r in range(w):
            for c in range(2 * w):
                i, j = b * w + r, (b - 1) * w + c
                assert bool(m[b, r, c]) == (0 <= j and i - w < j <= i)


def test_banded_attend_errors() -> None:
    q = torch.randn(1, 2, 4, 3)
    kw = {"mask": None, "offset": 0, "bias": None, "dropout_p": 0.0}
    with pytest.raises(ValueError, match=r"causal=False, window=2"):
        attend_banded(q, q, q, causal=False, window=2, **kw)
    with pytest.raises(ValueError, match=r"window=0"):
        attend_banded(q, q, q, causal=True, window=0, **kw)
    with pytest.raises(ValueError, match="no extra mask"):
        attend_banded(q, q, q, causal=True, window=2, **{**kw, "mask": torch.ones(4, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="attend='banded'"):
        MultiHeadAttention(8, 2, causal=True, attend="banded")


@pytest.mark.parametrize("attend", ["written", "banded", "sdpa"])
@pytest.mark.parametrize(("nkv", "w"), [(1, 3), (2, 1), (4, 4)])
def test_rolling_cache_equals_full_recomputation(attend: str, nkv: int, w: int) -> None:
    m = mha(16, 4, nkv, window=w, attend=attend).eval()
    seen = []
    m.positions = PositionHook(rotate=lambda t, pos: (seen.append(pos.tolist()), t * (1 + 0.01 * pos[:, None]))[1])
    x = torch.randn(2, 13, 16, dtype=DT)
    full = m(x)[0]
    seen.clear()
    nbytes = start_kv_caches(m, batch_size=2, max_len=13, rolling=True)
    assert isinstance(m.cache, RollingKVCache) and m.cache.k.shape == (2, nkv, w, 4)
    assert nbytes == kv_cache_bytes(1, nkv, 4, 13, batch_size=2, bytes_per_value=8, window=w)
    cuts = [(0, 5), (5, 6), (6, 7), (7, 11), (11, 12), (12, 13)]  # a prompt longer than w, steps, a chunk
    chunks = [m(x[:, a:b])[0] for a, b in cuts]
    assert m.cache.length == 13
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-12, rtol=1e-10)
    assert seen == [list(range(a, b)) for a, b in cuts for _ in range(2)]  # absolute positions continue
    stop_kv_caches(m)


def test_rolling_cache_gives_bias_hooks_the_keys_positions() -> None:
    m = mha(8, 2, 1, window=3).eval()
    m.positions = PositionHook(bias=lambda qp, kp: -0.1 * (qp[:, None] - kp[None, :]).abs().to(DT))
    x = torch.randn(1, 9, 8, dtype=DT)
    full = m(x)[0]
    start_kv_caches(m, 1, 9, rolling=True)
    steps = torch.cat([m(x[:, t : t + 1])[0] for t in range(9)], 1)
    torch.testing.assert_close(steps, full, atol=1e-12, rtol=1e-10)


def test_rolling_cache_keeps_only_the_window() -> None:
    c = RollingKVCache(1, 1, 3, 1, dtype=DT)
    for t in range(7):
        k = torch.full((1, 1, 1, 1), float(t), dtype=DT)
        got, _ = c.append(k, k)
        assert got.flatten().tolist() == [float(p) for p in range(max(0, t - 2), t + 1)]
    assert sorted(c.k.flatten().tolist()) == [4.0, 5.0, 6.0] and c.nbytes() == 2 * 3 * 8
    with pytest.raises(ValueError, match="window"):
        RollingKVCache(1, 1, 0, 1)
    with pytest.raises(ValueError, match="do not fit"):
        c.append(torch.zeros(1, 2, 1, 1, dtype=DT), torch.zeros(1, 2, 1, 1, dtype=DT))


@pytest.mark.parametrize("nkv", [1, 2, 8])
def test_kv_cache_bytes_equals_the_measured_buffers(nkv: int) -> None:
    layers = torch.nn.ModuleList([MultiHeadAttention(32, 8, nkv, causal=True, dtype=torch.float16) for _ in range(3)])
    measured = start_kv_caches(layers, batch_size=2, max_len=20)
    assert measured == sum(a.cache.k.nbytes + a.cache.v.nbytes for a in layers)
    assert measured == kv_cache_bytes(3, nkv, 4, 20, batch_size=2, bytes_per_value=2) == 2 * 3 * nkv * 4 * 20 * 2 * 2


def test_kv_cache_bytes_formula_and_errors() -> None:
    assert kv_cache_bytes(32, 32, 128, 4096) == 2 * 2**30  # Llama-2-7B, fp16, 4k: 2 GiB
    assert kv_cache_bytes(32, 8, 128, 32768, window=4096) == kv_cache_bytes(32, 8, 128, 4096)
    with pytest.raises(ValueError, match="n_kv_head"):
        kv_cache_bytes(2, 0, 4, 8)
    with pytest.raises(ValueError, match="window=0"):
        kv_cache_bytes(2, 1, 4, 8, window=0)


@pytest.mark.parametrize(("L", "w"), [(1, 1), (1, 5), (2, 4), (3, 3), (4, 8)])
def test_receptive_field_is_L_times_w_minus_1_plus_1(L: int, w: int) -> None:
    assert measure_receptive_field([w] * L, T=64) == L * (w - 1) + 1


def test_receptive_field_mixed_capped_and_errors() -> None:
    assert measure_receptive_field([3, 5, 2], T=40) == 1 + 2 + 4 + 1
    assert measure_receptive_field([4, None], T=12) == 12  # a full-attention layer sees everything
    assert measure_receptive_field([8] * 5, T=20) == 20
    with pytest.raises(ValueError, match="window=0"):
        measure_receptive_field([0], T=8)
    with pytest.raises(ValueError, match="window=9"):
        measure_receptive_field([9], T=8)
