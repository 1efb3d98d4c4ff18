"""Chapter 24's approximate and sparse attentions: linear attention (parallel and recurrent forms)
against the explicit quadratic form, Performer's features against exact softmax attention, the
Longformer and Sparse Transformer masks through block-sparse tiled attention against SDPA with the
explicit mask, and Reformer's LSH attention against SDPA under its mask built from ranks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers import (
    attend_banded,
    collision_probability,
    elu_feature_map,
    favor_features,
    fixed_pattern,
    flash_attention,
    linear_attention,
    linear_attention_step,
    longformer_mask,
    lsh_attention,
    lsh_hash,
    lsh_mask,
    pattern_density,
    performer_attention,
    random_projection,
    random_rotations,
    strided_pattern,
)
from tests.helpers import assert_same_forward_backward

DT = torch.float64


def quadratic_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, eps: float = 1e-6) -> torch.Tensor:
    a = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)  # (B, nh, T, T)
    if causal:
        a = a.tril()
    return (a @ v) / (a.sum(-1, keepdim=True) + eps)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T, chunk", [(1, 4), (37, 8), (32, 32), (20, 64)])
def test_linear_attention_equals_quadratic_form(causal: bool, T: int, chunk: int) -> None:
    q, k, v = torch.randn(2, 3, T, 6, dtype=DT), torch.randn(2, 3, T, 6, dtype=DT), torch.randn(2, 3, T, 5, dtype=DT)
    assert_same_forward_backward(
        lambda q, k, v: linear_attention(q, k, v, causal=causal, chunk=chunk),
        lambda q, k, v: quadratic_linear_attention(q, k, v, causal),
        [q, k, v],
    )


def test_recurrent_form_equals_parallel_form() -> None:
    q, k, v = torch.randn(2, 2, 23, 6, dtype=DT), torch.randn(2, 2, 23, 6, dtype=DT), torch.randn(2, 2, 23, 4, dtype=DT)
    state, outs = None, []
    for t in range(23):
        out, state = linear_attention_step(q[:, :, t], k[:, :, t], v[:, :, t], state)
        outs.append(out)
    assert state[0].shape == (2, 2, 6, 4) and state[1].shape == (2, 2, 6)  # the state does not grow with t
    torch.testing.assert_close(torch.stack(outs, 2), linear_attention(q, k, v, causal=True, chunk=5), atol=1e-12, rtol=0)


def test_linear_attention_rejects_bad_chunk() -> None:
    q = torch.randn(1, 1, 4, 2)
    with pytest.raises(ValueError, match="chunk=0"):
        linear_attention(q, q, q, chunk=0)


def test_orthogonal_projection_rows_are_orthogonal_within_blocks() -> None:
    w = random_projection(40, 16, orthogonal=True, generator=torch.Generator().manual_seed(0), dtype=DT)
    block = w[:16] / w[:16].norm(dim=1, keepdim=True)
    torch.testing.assert_close(block @ block.T, torch.eye(16, dtype=DT), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="m=0"):
        random_projection(0, 16)


def test_favor_features_estimate_the_softmax_kernel() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = 0.3 * torch.randn(1, 1, 5, 8, dtype=DT, generator=gen), 0.3 * torch.randn(1, 1, 7, 8, dtype=DT, generator=gen)
    w = random_projection(200_000, 8, generator=gen, dtype=DT)
    fx, fy = favor_features(x, w, is_query=True), favor_features(y, w, is_query=False)
    est = fx @ fy.transpose(-2, -1)  # exp(x.y) up to one factor per query row and one for all keys
    est = est / est.sum(-1, keepdim=True)
    exact = torch.softmax(x @ y.transpose(-2, -1), -1)
    torch.testing.assert_close(est, exact, atol=5e-3, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
def test_performer_converges_to_softmax_attention(causal: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    q, k, v = (0.3 * torch.randn(1, 2, 24, 8, dtype=DT, generator=gen) for _ in range(3))
    exact = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    errs = [(performer_attention(q, k, v, random_projection(m, 8, generator=gen, dtype=DT), causal=causal, chunk=7) - exact).norm()
            for m in (8, 50_000)]
    assert errs[1] < 0.02 * exact.norm() and errs[1] < errs[0]


def test_longformer_mask_definition() -> None:
    T, w, g = 12, 3, [0, 7]
    m = longformer_mask(T, w, g)
    for i in range(T):
        for j in range(T):
            want = j <= i and (i - w < j or j in g or i in g)
            assert bool(m[i, j]) == want, (i, j)
    sym = longformer_mask(T, 4, [5], causal=False)
    assert torch.equal(sym, sym.T) and bool(sym[0, 2]) and not bool(sym[0, 3]) and bool(sym[0, 5]) and bool(sym[5, 11])


@pytest.mark.parametrize("T, block", [(37, 8), (64, 16)])
def test_sparse_patterns_through_tiles_equal_sdpa(T: int, block: int) -> None:
    q, k, v = (torch.randn(2, 2, T, 8, dtype=DT) for _ in range(3))
    for mask in (longformer_mask(T, 5, [0, T // 2]), strided_pattern(T, 6), fixed_pattern(T, 8, 2)):
        assert_same_forward_backward(
            lambda q, k, v, mask=mask: flash_attention(q, k, v, mask=mask, block_q=block, block_k=block),
            lambda q, k, v, mask=mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
            [q, k, v],
        )


def test_window_only_longformer_equals_banded_attention() -> None:
    q, k, v = (torch.randn(1, 2, 40, 8, dtype=DT) for _ in range(3))
    kw = {"mask": None, "causal": True, "offset": 0, "window": 6, "bias": None, "dropout_p": 0.0}
    got = flash_attention(q, k, v, mask=longformer_mask(40, 6), block_q=8, block_k=8)
    torch.testing.assert_close(got, attend_banded(q, k, v, **kw)[0], atol=1e-12, rtol=0)


def test_strided_and_fixed_definitions() -> None:
    T, l, c = 20, 4, 1
    s, f = strided_pattern(T, l), fixed_pattern(T, l, c)
    for i in range(T):
        for j in range(T):
            assert bool(s[0, i, j]) == (0 <= i - j < l) and bool(s[1, i, j]) == (j <= i and (i - j) % l == 0)
            assert bool(f[0, i, j]) == (j <= i and j // l == i // l)
            assert bool(f[1, i, j]) == (j <= i and (j % l >= l - c or j == i))
    assert pattern_density(torch.ones(8, 8, dtype=torch.bool).tril(), 4) == 0.75
    with pytest.raises(ValueError, match="c=5 and stride=4"):
        fixed_pattern(T, 4, 5)
    with pytest.raises(ValueError, match="stride=0"):
        strided_pattern(T, 0)


def test_lsh_two_buckets_collide_as_one_hyperplane() -> None:
    angles = torch.tensor([0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4, math.pi])
    p = collision_probability(angles, 2, d=16, trials=4000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(p, 1 - angles.double() / math.pi, atol=0.03, rtol=0)
    p8 = collision_probability(angles, 8, d=16, trials=500, generator=torch.Generator().manual_seed(0))
    assert p8[0] == 1 and p8[-1] == 0 and bool((p8[1:] <= p8[:-1]).all())


def test_lsh_hash_range_and_rotation_check() -> None:
    x = torch.randn(3, 50, 8)
    h = lsh_hash(x, random_rotations(8, 6))
    assert h.min() >= 0 and h.max() <= 5
    r = random_rotations(8, 2)
    torch.testing.assert_close(lsh_hash(x, r), ((x @ r)[..., 0] < 0).long(), atol=0, rtol=0)  # the side of a hyperplane
    torch.testing.assert_close(lsh_hash(-x, r), 1 - lsh_hash(x, r), atol=0, rtol=0)
    with pytest.raises(ValueError, match="n_buckets=3"):
        random_rotations(8, 3)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("T, chunk, n_buckets", [(48, 8, 4), (32, 4, 8), (16, 16, 2)])
def test_lsh_attention_equals_sdpa_under_its_mask(causal: bool, T: int, chunk: int, n_buckets: int) -> None:
    qk, v = torch.randn(2, 2, T, 8, dtype=DT), torch.randn(2, 2, T, 5, dtype=DT)
    rot = random_rotations(8, n_buckets, dtype=DT)
    buckets = lsh_hash(qk, rot)
    mask = lsh_mask(buckets, chunk, causal=causal)
    assert mask.any(-1).all()  # every position sees at least itself
    assert_same_forward_backward(
        lambda qk, v: lsh_attention(qk, v, rot, chunk=chunk, causal=causal)[0],
        lambda qk, v: F.scaled_dot_product_attention(qk, F.normalize(qk, dim=-1), v, attn_mask=mask),
        [qk, v],
    )


def test_lsh_one_bucket_one_chunk_is_full_shared_qk_attention() -> None:
    qk, v = torch.randn(1, 2, 16, 8, dtype=DT), torch.randn(1, 2, 16, 8, dtype=DT)
    rot = torch.zeros(8, 1, dtype=DT)  # every projection 0: argmax picks bucket 0 for all
    out, buckets = lsh_attention(qk, v, rot, chunk=16)
    assert (buckets == 0).all()
    allowed = torch.ones(16, 16, dtype=torch.bool).tril() & ~torch.eye(16, dtype=torch.bool)
    allowed[0, 0] = True  # position 0 has nobody else
    want = F.scaled_dot_product_attention(qk, F.normalize(qk, dim=-1), v, attn_mask=allowed)
    torch.testing.assert_close(out, want, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="chunk=5 and T=16"):
        lsh_attention(qk, v, rot, chunk=5)
