"""Chapter 24's tiled attention: the online softmax, and FlashAttention's forward and recomputing
backward equal to ``F.scaled_dot_product_attention`` (values and the gradients of q, k and v), with
and without the causal mask, under sparse masks, at tile sizes that do not divide the lengths."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.layers import flash_attention, flash_forward, online_softmax
from tests.helpers import assert_same_forward_backward


@pytest.mark.parametrize("N, block", [(1, 1), (37, 5), (64, 64), (10, 100)])
def test_online_softmax_equals_softmax(N: int, block: int) -> None:
    x = 10 * torch.randn(3, 4, N, dtype=torch.float64)
    torch.testing.assert_close(online_softmax(x, block), torch.softmax(x, -1), atol=1e-14, rtol=0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "B, nh, T, S, hs, block_q, block_k",
    [(2, 3, 37, 37, 16, 8, 16), (1, 1, 1, 1, 4, 64, 64), (1, 2, 50, 50, 7, 50, 3), (2, 1, 23, 41, 8, 5, 7), (1, 2, 64, 64, 8, 16, 16)],
)
def test_flash_equals_sdpa_float64(causal: bool, B: int, nh: int, T: int, S: int, hs: int, block_q: int, block_k: int) -> None:
    q, k, v = torch.randn(B, nh, T, hs, dtype=torch.float64), torch.randn(B, nh, S, hs, dtype=torch.float64), torch.randn(B, nh, S, 5, dtype=torch.float64)
    assert_same_forward_backward(
        lambda q, k, v: flash_attention(q, k, v, causal=causal, block_q=block_q, block_k=block_k),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
        [q, k, v],
    )


@pytest.mark.parametrize("causal", [False, True])
def test_flash_equals_sdpa_float32(causal: bool) -> None:
    q, k, v = (torch.randn(2, 2, 45, 16) for _ in range(3))
    assert_same_forward_backward(
        lambda q, k, v: flash_attention(q, k, v, causal=causal, block_q=16, block_k=8),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
        [q, k, v], atol=1e-5, rtol=1e-5,
    )


def test_flash_with_mask_and_scale_equals_sdpa() -> None:
    T = 30
    mask = torch.rand(2, T, T) < 0.3
    mask |= torch.eye(T, dtype=torch.bool)  # no empty row
    mask[:, :8, 16:] = False  # whole tiles off: skipped
    q, k, v = (torch.randn(1, 2, T, 8, dtype=torch.float64) for _ in range(3))
    assert_same_forward_backward(
        lambda q, k, v: flash_attention(q, k, v, mask=mask, causal=True, scale=0.3, block_q=8, block_k=8),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask & torch.ones(T, T, dtype=torch.bool).tril(), scale=0.3),
        [q, k, v],
    )


def test_saved_log_sum_exp_is_the_rows_logsumexp() -> None:
    q, k, v = (torch.randn(2, 3, 19, 8, dtype=torch.float64) for _ in range(3))
    _, lse = flash_forward(q, k, v, causal=True, mask=None, scale=0.25, block_q=4, block_k=6)
    scores = (0.25 * q @ k.transpose(-2, -1)).masked_fill(~torch.ones(19, 19, dtype=torch.bool).tril(), float("-inf"))
    torch.testing.assert_close(lse, torch.logsumexp(scores, -1), atol=1e-12, rtol=0)


def test_causal_output_ignores_the_future() -> None:
    q, k, v = (torch.randn(1, 2, 20, 8, dtype=torch.float64) for _ in range(3))
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 12:], v2[:, :, 12:] = torch.randn(1, 2, 8, 8), torch.randn(1, 2, 8, 8)
    a = flash_attention(q, k, v, causal=True, block_q=6, block_k=6)
    b = flash_attention(q, k2, v2, causal=True, block_q=6, block_k=6)
    torch.testing.assert_close(a[:, :, :12], b[:, :, :12], atol=0, rtol=0)


@pytest.mark.parametrize("block_q, block_k", [(0, 64), (64, -1), (2.5, 8), (True, 4)])
def test_tile_sizes_must_be_positive(block_q: object, block_k: object) -> None:
    q = torch.randn(1, 1, 4, 2)
    with pytest.raises(ValueError, match="tile sizes must be positive") as err:
        flash_attention(q, q, q, block_q=block_q, block_k=block_k)  # type: ignore[arg-type]
    assert f"block_q={block_q!r}" in str(err.value) and f"block_k={block_k!r}" in str(err.value)
    with pytest.raises(ValueError, match="block_q=0 and block_k=0"):
        online_softmax(q, 0)


def test_mask_must_be_bool() -> None:
    q = torch.randn(1, 1, 4, 2)
    with pytest.raises(ValueError, match="bool"):
        flash_attention(q, q, q, mask=torch.ones(4, 4))
