"""RoPE and ALiBi: the rotation against its complex form and transformers, relative positions, slopes."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.layers.alibi import ALiBi, alibi_bias, alibi_slopes
from dlscratch.layers.attention.modules import MultiHeadAttention
from dlscratch.layers.rope import (
    RoPE,
    apply_rope,
    apply_rope_complex,
    apply_rope_interleaved,
    rope_angles,
    rope_permutation,
)
from tests.helpers import assert_same_forward_backward

transformers_llama = pytest.importorskip("transformers.models.llama.modeling_llama")


@pytest.mark.parametrize("hs", [2, 8, 64])
def test_interleaved_rope_is_the_complex_form(hs: int) -> None:
    x = torch.randn(2, 3, 7, hs, dtype=torch.float64)
    a = rope_angles(torch.arange(5, 12), hs)
    torch.testing.assert_close(apply_rope_interleaved(x, a), apply_rope_complex(x, a), atol=1e-14, rtol=0)


@pytest.mark.parametrize("hs", [2, 6, 32])
def test_half_split_equals_interleaved_up_to_a_permutation(hs: int) -> None:
    x = torch.randn(3, 9, hs, dtype=torch.float64)
    a = rope_angles(torch.arange(9), hs, base=500.0)
    p = rope_permutation(hs)
    torch.testing.assert_close(apply_rope(x[..., p], a), apply_rope_interleaved(x, a)[..., p], atol=1e-14, rtol=0)


def test_angles_are_the_paper_frequencies_and_interpolation_divides_positions() -> None:
    a = rope_angles(torch.tensor([3]), 8, base=10000.0)
    expected = torch.tensor([[3 * 10000.0 ** (-2 * i / 8) for i in range(4)]], dtype=torch.float64)
    torch.testing.assert_close(a, expected, atol=1e-15, rtol=0)
    torch.testing.assert_close(rope_angles(torch.tensor([12]), 8, scale=4.0), a, atol=1e-15, rtol=0)


def test_rotation_preserves_norms() -> None:
    x = torch.randn(4, 10, 16, dtype=torch.float64)
    y = apply_rope(x, rope_angles(torch.arange(10), 16))
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), atol=1e-13, rtol=0)


def test_score_depends_only_on_the_offset() -> None:
    hs = 16
    q, k = torch.randn(hs, dtype=torch.float64), torch.randn(hs, dtype=torch.float64)

    def score(m: int, n: int) -> torch.Tensor:
        rq = apply_rope(q[None], rope_angles(torch.tensor([m]), hs))[0]
        rk = apply_rope(k[None], rope_angles(torch.tensor([n]), hs))[0]
        return rq @ rk

    for m, n in ((0, 0), (5, 2), (2, 5), (30, 31)):
        for shift in (1, 17, 400):
            assert float(score(m + shift, n + shift) - score(m, n)) == pytest.approx(0.0, abs=1e-12)
    assert float(score(3, 0) - score(0, 3)) != pytest.approx(0.0, abs=1e-6)  # the offset's sign matters


def test_matches_transformers_apply_rotary_pos_emb() -> None:
    B, nh, T, hs = 2, 3, 11, 8
    q, k = torch.randn(B, nh, T, hs, dtype=torch.float64), torch.randn(B, nh, T, hs, dtype=torch.float64)
    phi = torch.cat([rope_angles(torch.arange(T), hs)] * 2, dim=-1)  # (T, hs)
    q_hf, k_hf = transformers_llama.apply_rotary_pos_emb(q, k, phi.cos()[None], phi.sin()[None])
    rope = RoPE(hs)
    torch.testing.assert_close(rope(q, torch.arange(T)), q_hf, atol=1e-14, rtol=0)
    torch.testing.assert_close(rope(k, torch.arange(T)), k_hf, atol=1e-14, rtol=0)
    assert_same_forward_backward(lambda x: rope(x, torch.arange(T)),
                                 lambda x: transformers_llama.apply_rotary_pos_emb(x, x, phi.cos()[None], phi.sin()[None])[0],
                                 [q])


def test_rotary_attention_is_cache_consistent() -> None:
    torch.set_default_dtype(torch.float64)
    attn = MultiHeadAttention(16, 4, num_kv_heads=2, bias=False, causal=True).eval()
    attn.positions = RoPE(4).hook()
    x = torch.randn(2, 9, 16)
    full, _ = attn(x)
    from dlscratch.layers.attention.kv_cache import KVCache

    attn.cache = KVCache(2, 2, 9, 4, dtype=torch.float64)
    steps = [attn(x[:, :4])[0]] + [attn(x[:, t : t + 1])[0] for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-12, rtol=0)


@pytest.mark.parametrize("bad", [0, 3, 7, -2, 2.0, True])
def test_rope_refuses_an_odd_or_bad_head_size(bad: object) -> None:
    with pytest.raises(ValueError, match=f"head_size={bad!r}"):
        RoPE(bad)  # type: ignore[arg-type]


def test_rope_refuses_a_tensor_of_another_head_size() -> None:
    with pytest.raises(ValueError, match="head size 8"):
        RoPE(8)(torch.zeros(1, 1, 3, 6), torch.arange(3))


def _paper_slopes(n: int) -> list[float]:
    """Press et al.'s reference rule, written from the paper's description."""
    def pow2(k: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / k) for i in range(k)]

    if math.log2(n).is_integer():
        return pow2(n)
    c = 2 ** int(math.floor(math.log2(n)))
    return pow2(c) + pow2(2 * c)[::2][: n - c]


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 3, 5, 6, 12, 20])
def test_alibi_slopes_are_the_geometric_series(n: int) -> None:
    torch.testing.assert_close(alibi_slopes(n), torch.tensor(_paper_slopes(n), dtype=torch.float64), atol=1e-15, rtol=0)


def test_alibi_slopes_for_eight_heads_are_halvings() -> None:
    assert alibi_slopes(8).tolist() == [2.0 ** -(h + 1) for h in range(8)]


def test_alibi_bias_is_minus_slope_times_distance() -> None:
    b = alibi_bias(torch.tensor([0.5, 0.25], dtype=torch.float64), torch.arange(3, 6), torch.arange(6))
    assert b.shape == (2, 3, 6)
    assert b[0, 2, 1] == -0.5 * (5 - 1) and b[1, 0, 3] == 0.0


def test_alibi_attention_equals_the_explicit_biased_softmax() -> None:
    torch.set_default_dtype(torch.float64)
    attn = MultiHeadAttention(12, 3, bias=False, causal=True)
    attn.positions = ALiBi(3, dtype=torch.float64).hook()
    x = torch.randn(2, 7, 12)
    y, w = attn(x, average_attn_weights=False)
    q = attn.q_proj(x).view(2, 7, 3, 4).transpose(1, 2)
    k = attn.k_proj(x).view(2, 7, 3, 4).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / 2.0 + alibi_bias(alibi_slopes(3), torch.arange(7), torch.arange(7))
    s = s.masked_fill(~torch.ones(7, 7, dtype=torch.bool).tril(), float("-inf"))
    torch.testing.assert_close(w, s.softmax(-1), atol=1e-13, rtol=0)


def test_alibi_refuses_a_bad_head_count() -> None:
    with pytest.raises(ValueError, match="n_head must be a positive integer, got 0"):
        alibi_slopes(0)
