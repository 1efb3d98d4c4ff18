"""The kit's attention: GQA/MQA, written vs SDPA attend, sliding windows, the layer's KV cache,
the position hook, initialisation against torch, and configuration errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlscratch.layers import (
    MultiHeadAttention,
    PositionHook,
    offset_causal_mask,
    repeat_kv,
    start_kv_caches,
    stop_kv_caches,
)
from tests.helpers import assert_same_forward_backward

DT = torch.float64


def mha(C: int, nh: int, nkv: int | None = None, **kw) -> MultiHeadAttention:
    m = MultiHeadAttention(C, nh, nkv, dtype=DT, **kw)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) / C**0.5)
    return m


def reference_gqa(m: MultiHeadAttention, x: torch.Tensor, causal: bool, window: int | None = None) -> torch.Tensor:
    """Grouped-query attention written head by head: query head h reads key/value head h // (nh / nkv)."""
    B, T, C = x.shape
    nh, nkv, hs = m.num_heads, m.num_kv_heads, m.head_dim
    q, k, v = m.q_proj(x), m.k_proj(x), m.v_proj(x)
    heads = []
    for h in range(nh):
        g = h // (nh // nkv)
        qh, kh, vh = q[..., h * hs : (h + 1) * hs], k[..., g * hs : (g + 1) * hs], v[..., g * hs : (g + 1) * hs]
        s = qh @ kh.transpose(1, 2) / math.sqrt(hs)  # (B, T, T)
        i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
        allowed = torch.ones(T, T, dtype=torch.bool)
        if causal:
            allowed &= j <= i
        if window is not None:
            allowed &= j > i - window
        heads.append(torch.softmax(s.masked_fill(~allowed, float("-inf")), -1) @ vh)
    return m.out_proj(torch.cat(heads, -1))


@pytest.mark.parametrize("attend", ["written", "sdpa"])
@pytest.mark.parametrize(("C", "nh", "nkv"), [(12, 4, 4), (12, 4, 2), (12, 4, 1), (15, 3, 1), (8, 8, 2)])
@pytest.mark.parametrize("window", [None, 1, 3])
def test_gqa_and_window_match_a_head_by_head_formula(attend: str, C: int, nh: int, nkv: int, window: int | None) -> None:
    m = mha(C, nh, nkv, attend=attend, causal=True, window=window)
    x = torch.randn(2, 6, C, dtype=DT)
    torch.testing.assert_close(m(x)[0], reference_gqa(m, x, causal=True, window=window), atol=1e-12, rtol=1e-10)


def test_parameter_count_with_shared_kv_heads() -> None:
    C, nh, nkv = 16, 8, 2
    m = MultiHeadAttention(C, nh, nkv)
    hs = C // nh
    assert sum(p.numel() for p in m.parameters()) == 2 * C * C + 2 * C * nkv * hs + 2 * C + 2 * nkv * hs
    assert m.k_proj.weight.shape == (nkv * hs, C)


@pytest.mark.parametrize(("nkv", "window", "hook"), [(4, None, False), (2, None, True), (1, 2, False), (2, 3, True)])
def test_written_and_sdpa_attend_agree_with_every_gradient(nkv: int, window: int | None, hook: bool) -> None:
    written = mha(12, 4, nkv, causal=True, window=window)
    sdpa = MultiHeadAttention(12, 4, nkv, causal=True, window=window, attend="sdpa", dtype=DT)
    sdpa.load_state_dict(written.state_dict())
    if hook:
        slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625], dtype=DT)[:, None, None]
        positions = PositionHook(bias=lambda qp, kp: -slopes * (qp[:, None] - kp[None, :]).to(DT))
        written.positions = sdpa.positions = positions
    x = torch.randn(3, 7, 12, dtype=DT)
    assert_same_forward_backward(lambda t: written(t)[0], lambda t: sdpa(t)[0], [x], modules=(written, sdpa), atol=1e-12)


def test_repeat_kv_matches_repeat_interleave() -> None:
    x = torch.randn(2, 3, 5, 4)
    torch.testing.assert_close(repeat_kv(x, 4), x.repeat_interleave(4, dim=1), atol=0, rtol=0)
    assert repeat_kv(x, 1) is x


def test_offset_causal_mask_formula_and_cache() -> None:
    for T, S, o, w in [(4, 4, 0, None), (1, 7, 6, None), (2, 5, None, None), (5, 5, 0, 2), (3, 9, 6, 4)]:
        got = offset_causal_mask(T, S, o, w)
        o_ = S - T if o is None else o
        i, j = torch.arange(T)[:, None], torch.arange(S)[None, :]
        want = (j <= o_ + i) & ((j > o_ + i - w) if w is not None else True)
        assert torch.equal(got, want), (T, S, o, w)
    assert offset_causal_mask(6, 6) is offset_causal_mask(6, 6)  # built once per length, then cached
    with pytest.raises(ValueError, match="T=3, S=2"):
        offset_causal_mask(3, 2)
    with pytest.raises(ValueError, match="window=0"):
        offset_causal_mask(2, 2, window=0)


@pytest.mark.parametrize("attend", ["written", "sdpa"])
@pytest.mark.parametrize(("nkv", "window"), [(4, None), (2, None), (1, 3), (4, 2)])
def test_kv_cache_equals_full_recomputation(attend: str, nkv: int, window: int | None) -> None:
    m = mha(16, 4, nkv, attend=attend, causal=True, window=window).eval()
    seen = []
    m.positions = PositionHook(rotate=lambda t, pos: (seen.append(pos.tolist()), t * (1 + 0.01 * pos[:, None]))[1])
    x = torch.randn(2, 9, 16, dtype=DT)
    full = m(x)[0]
    seen.clear()
    start_kv_caches(m, batch_size=2, max_len=9)
    assert m.cache is not None and m.cache.length == 0
    chunks = [m(x[:, a:b])[0] for a, b in [(0, 4), (4, 5), (5, 6), (6, 9)]]  # the prompt, then steps
    assert m.cache.length == 9 and m.cache.k.shape == (2, nkv, 9, 4)
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-12, rtol=1e-10)
    assert seen == [p for p in ([0, 1, 2, 3], [4], [5], [6, 7, 8]) for _ in range(2)]  # q and k, at absolute positions
    stop_kv_caches(m)
    assert m.cache is None


def test_identity_position_hook_changes_nothing() -> None:
    plain = mha(12, 3, causal=True)
    hooked = mha(12, 3, causal=True)
    hooked.load_state_dict(plain.state_dict())
    hooked.positions = PositionHook(rotate=lambda t, pos: t, bias=lambda qp, kp: torch.zeros(len(qp), len(kp), dtype=DT))
    x = torch.randn(2, 5, 12, dtype=DT)
    assert_same_forward_backward(lambda t: plain(t)[0], lambda t: hooked(t)[0], [x], modules=(plain, hooked), atol=0, rtol=0)


def test_bias_hook_is_added_to_the_scores() -> None:
    # a bias of -inf above the diagonal is the causal mask
    m = mha(8, 2)
    x = torch.randn(2, 5, 8, dtype=DT)
    causal = m(x, is_causal=True)[0]
    m.positions = PositionHook(bias=lambda qp, kp: torch.zeros(len(qp), len(kp), dtype=DT).masked_fill(kp[None] > qp[:, None], float("-inf")))
    torch.testing.assert_close(m(x)[0], causal, atol=1e-14, rtol=0)


def test_keep_weights() -> None:
    m = mha(8, 2, causal=True)
    m.keep_weights = True
    m(torch.randn(3, 4, 8, dtype=DT), need_weights=False)
    assert m.last_weights.shape == (3, 2, 4, 4) and (m.last_weights.triu(1) == 0).all()


def test_initialisation_matches_torch() -> None:
    # torch draws the stacked (3C, C) in_proj_weight from Glorot-uniform: std = sqrt(2 / (C + 3C));
    # Glorot on each (C, C) block would be sqrt(2) times larger
    C, nh = 512, 8
    ours, ref = MultiHeadAttention(C, nh), nn.MultiheadAttention(C, nh, batch_first=True)
    ours_std = torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]).std().item()
    ref_std = ref.in_proj_weight.std().item()
    assert abs(ours_std / ref_std - 1) < 0.02, (ours_std, ref_std)
    assert abs(ours_std - math.sqrt(2 / (4 * C))) < 0.02 * ours_std
    assert abs(ours.out_proj.weight.std().item() / ref.out_proj.weight.std().item() - 1) < 0.02
    for lin in (ours.q_proj, ours.k_proj, ours.v_proj, ours.out_proj):
        assert (lin.bias == 0).all()
    assert (ref.in_proj_bias == 0).all() and (ref.out_proj.bias == 0).all()


def test_cache_errors() -> None:
    m = mha(8, 2)  # not causal
    with pytest.raises(ValueError, match="no causal self-attention layer"):
        start_kv_caches(m, 1, 4)
    c = mha(8, 2, causal=True)
    start_kv_caches(c, 1, 4)
    c(torch.randn(1, 3, 8, dtype=DT))
    with pytest.raises(ValueError, match=r"KVCache holds 4 positions; 3 cached \+ 2 new = 5"):
        c(torch.randn(1, 2, 8, dtype=DT))
    with pytest.raises(ValueError, match="needs causal self-attention"):
        c(torch.randn(1, 1, 8, dtype=DT), is_causal=False)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match=r"num_heads=4 must be a multiple of num_kv_heads=3"):
        MultiHeadAttention(8, 4, 3)
    with pytest.raises(ValueError, match=r"sliding window needs causal=True .* causal=False, window=2"):
        MultiHeadAttention(8, 4, window=2)
    with pytest.raises(ValueError, match=r"unknown attend 'flash'; expected one of \['banded', 'sdpa', 'written'\]"):
        MultiHeadAttention(8, 4, attend="flash")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        MultiHeadAttention(8, 4, dropout=1.0)
