"""Attention functions against PyTorch: F.scaled_dot_product_attention and nn.MultiheadAttention.

Forward values and every gradient in float64, over awkward shapes (T=1, odd C, one head,
head size 1, S != T), plus properties (rows sum to 1, causality) and bad input.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dlscratch.layers import (
    causal_mask,
    merge_heads,
    multi_head_attention,
    multi_head_attention_loop,
    scaled_dot_product_attention,
    split_heads,
)
from tests.helpers import assert_same_forward_backward

DT = torch.float64

# leading dims, T, S, hs, hs_v
SDPA_SHAPES = [
    ((2, 3), 5, 5, 4, 4),
    ((2, 3), 5, 7, 4, 6),  # S != T and a different value size
    ((2, 3), 7, 4, 8, 8),  # T > S
    ((1,), 1, 1, 3, 3),  # T = S = 1
    ((2, 2), 1, 6, 5, 5),  # one query
    ((), 6, 6, 1, 1),  # no batch dims, head size 1
    ((3,), 4, 4, 7, 7),  # odd head size
]


def qkv(lead: tuple[int, ...], T: int, S: int, hs: int, hs_v: int) -> list[torch.Tensor]:
    sizes = [(T, hs), (S, hs), (S, hs_v)]
    return [torch.randn(*lead, *size, dtype=DT) for size in sizes]


def ours_out(**kw):
    return lambda q, k, v: scaled_dot_product_attention(q, k, v, **kw)[0]


def torch_out(**kw):
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw)


@pytest.mark.parametrize("shape", SDPA_SHAPES)
def test_sdpa_no_mask(shape) -> None:
    assert_same_forward_backward(ours_out(), torch_out(), qkv(*shape))


@pytest.mark.parametrize("shape", SDPA_SHAPES)
def test_sdpa_causal(shape) -> None:
    # top-left aligned (j <= i) even when S != T: every query keeps key 0, so no row is empty
    assert_same_forward_backward(ours_out(is_causal=True), torch_out(is_causal=True), qkv(*shape))


@pytest.mark.parametrize("shape", SDPA_SHAPES)
@pytest.mark.parametrize("full_shape", [False, True])
def test_sdpa_bool_mask(shape, full_shape: bool) -> None:
    lead, T, S, *_ = shape
    mask = torch.rand(*(lead if full_shape else ()), T, S) < 0.6
    mask[..., 0] = True  # every query keeps at least one key
    assert_same_forward_backward(
        lambda q, k, v: scaled_dot_product_attention(q, k, v, mask=mask)[0],
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        qkv(*shape),
    )


@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0])
@pytest.mark.parametrize("is_causal", [False, True])
def test_sdpa_custom_scale(scale: float, is_causal: bool) -> None:
    assert_same_forward_backward(
        ours_out(scale=scale, is_causal=is_causal), torch_out(scale=scale, is_causal=is_causal), qkv((2, 2), 5, 5, 4, 4)
    )


def test_sdpa_mask_and_causal_combine() -> None:
    q, k, v = qkv((2,), 5, 5, 4, 4)
    pad = torch.tensor([True, True, True, False, True])  # key 3 is padding
    ours, w = scaled_dot_product_attention(q, k, v, mask=pad, is_causal=True)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=pad & causal_mask(5))
    torch.testing.assert_close(ours, ref)
    assert (w[..., 3] == 0).all() and (w.triu(1) == 0).all()


@pytest.mark.parametrize("is_causal", [False, True])
def test_sdpa_weights(is_causal: bool) -> None:
    q, k, v = qkv((2, 3), 6, 6, 4, 4)
    out, w = scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 6, dtype=DT))
    assert (w >= 0).all()
    logits = q @ k.transpose(-2, -1) / 2.0  # independent: 1/sqrt(hs) with hs = 4
    if is_causal:
        logits = logits + torch.full((6, 6), float("-inf"), dtype=DT).triu(1)
        assert (w.triu(1) == 0).all()  # lower-triangular
    torch.testing.assert_close(w, torch.softmax(logits, -1))
    torch.testing.assert_close(out, w @ v)


def test_causal_mask_is_lower_triangular() -> None:
    for T in (1, 2, 5):
        m = causal_mask(T)
        assert m.dtype == torch.bool and m.shape == (T, T)
        i, j = torch.meshgrid(torch.arange(T), torch.arange(T), indexing="ij")
        assert torch.equal(m, j <= i)


@pytest.mark.parametrize("T", [2, 5])
def test_sdpa_causality(T: int) -> None:
    q, k, v = qkv((2,), T, T, 4, 4)
    out, _ = scaled_dot_product_attention(q, k, v, is_causal=True)
    for t in range(T - 1):
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        for x in (q2, k2, v2):
            x[:, t + 1 :] = torch.randn_like(x[:, t + 1 :])
        out2, _ = scaled_dot_product_attention(q2, k2, v2, is_causal=True)
        torch.testing.assert_close(out2[:, : t + 1], out[:, : t + 1], atol=0, rtol=0)
        assert not torch.allclose(out2[:, t + 1 :], out[:, t + 1 :])


# ---------------------------------------------------------------- multi-head attention

# B, T, C, n_head
MHA_SHAPES = [(2, 5, 8, 2), (1, 1, 8, 4), (2, 4, 15, 3), (3, 6, 7, 1), (2, 3, 6, 6)]


def mha_inputs(B: int, T: int, C: int) -> list[torch.Tensor]:
    return [torch.randn(B, T, C, dtype=DT)] + [torch.randn(C, C, dtype=DT) / C**0.5 for _ in range(4)]


def reference_mha(x, w_q, w_k, w_v, w_o, n_head: int, is_causal: bool) -> torch.Tensor:
    """Independent reference: F.scaled_dot_product_attention on heads split with unflatten."""
    B, T, C = x.shape

    def heads(y: torch.Tensor) -> torch.Tensor:
        return y.unflatten(-1, (n_head, C // n_head)).transpose(1, 2)  # (B, nh, T, hs)

    o = F.scaled_dot_product_attention(heads(x @ w_q.T), heads(x @ w_k.T), heads(x @ w_v.T), is_causal=is_causal)
    return o.transpose(1, 2).reshape(B, T, C) @ w_o.T


@pytest.mark.parametrize("B,T,C,n_head", MHA_SHAPES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_mha_batched_loop_and_reference_agree(B: int, T: int, C: int, n_head: int, is_causal: bool) -> None:
    inputs = mha_inputs(B, T, C)
    batched = lambda *a: multi_head_attention(*a, n_head=n_head, is_causal=is_causal)[0]  # noqa: E731
    loop = lambda *a: multi_head_attention_loop(*a, n_head=n_head, is_causal=is_causal)[0]  # noqa: E731
    ref = lambda *a: reference_mha(*a, n_head=n_head, is_causal=is_causal)  # noqa: E731
    assert_same_forward_backward(batched, ref, inputs)
    assert_same_forward_backward(loop, ref, inputs)
    assert_same_forward_backward(batched, loop, inputs)
    torch.testing.assert_close(
        multi_head_attention(*inputs, n_head=n_head, is_causal=is_causal)[1],
        multi_head_attention_loop(*inputs, n_head=n_head, is_causal=is_causal)[1],
    )


@pytest.mark.parametrize("B,T,C,n_head", MHA_SHAPES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_mha_matches_nn_multihead_attention(B: int, T: int, C: int, n_head: int, is_causal: bool) -> None:
    mha = nn.MultiheadAttention(C, n_head, bias=False, batch_first=True, dtype=DT)
    attn_mask = ~causal_mask(T) if is_causal else None  # torch's bool mask: True = blocked

    def torch_mha(x, w_q, w_k, w_v, w_o):
        params = {"in_proj_weight": torch.cat([w_q, w_k, w_v]), "out_proj.weight": w_o}
        return functional_call(mha, params, (x, x, x), {"attn_mask": attn_mask, "need_weights": False})[0]

    inputs = mha_inputs(B, T, C)
    ours = lambda *a: multi_head_attention(*a, n_head=n_head, is_causal=is_causal)[0]  # noqa: E731
    assert_same_forward_backward(ours, torch_mha, inputs)
    # per-head weights too
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat(inputs[1:4]))
        mha.out_proj.weight.copy_(inputs[4])
        y_ref, w_ref = mha(*[inputs[0]] * 3, attn_mask=attn_mask, average_attn_weights=False)
    y, w = multi_head_attention(*inputs, n_head=n_head, is_causal=is_causal)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(w, w_ref)


@pytest.mark.parametrize("fn", [multi_head_attention, multi_head_attention_loop])
def test_mha_causality(fn) -> None:
    B, T, C, nh = 2, 6, 12, 3
    x, *ws = mha_inputs(B, T, C)
    y, _ = fn(x, *ws, n_head=nh, is_causal=True)
    for t in range(T - 1):
        x2 = x.clone()
        x2[:, t + 1] += 1.0  # change token t+1 only
        y2, _ = fn(x2, *ws, n_head=nh, is_causal=True)
        torch.testing.assert_close(y2[:, : t + 1], y[:, : t + 1], atol=0, rtol=0)
        assert not torch.allclose(y2[:, t + 1], y[:, t + 1])


@pytest.mark.parametrize("B,T,C,n_head", MHA_SHAPES)
def test_split_merge_roundtrip(B: int, T: int, C: int, n_head: int) -> None:
    x = torch.randn(B, T, C, dtype=DT)
    h = split_heads(x, n_head)
    assert h.shape == (B, n_head, T, C // n_head)
    hs = C // n_head
    for i in range(n_head):  # head i holds channels i*hs .. (i+1)*hs - 1
        torch.testing.assert_close(h[:, i], x[..., i * hs : (i + 1) * hs], atol=0, rtol=0)
    torch.testing.assert_close(merge_heads(h), x, atol=0, rtol=0)


# ---------------------------------------------------------------- bad input


def test_errors_name_the_offending_values() -> None:
    q, k, v = qkv((2,), 4, 5, 8, 8)
    with pytest.raises(ValueError, match=r"q has 8, k has 6"):
        scaled_dot_product_attention(q, k[..., :6], v)
    with pytest.raises(ValueError, match=r"k has 5, v has 3"):
        scaled_dot_product_attention(q, k, v[:, :3])
    with pytest.raises(ValueError, match=r"got dtype torch.float32"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 5))
    with pytest.raises(ValueError, match=r"got dtype torch.int64"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(3, 5\) does not broadcast to \(\.\.\., T, S\) = \(2, 4, 5\)"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"q.dim\(\)=3, k.dim\(\)=4, v.dim\(\)=3"):
        scaled_dot_product_attention(q, k[None], v)
    with pytest.raises(ValueError, match=r"q.dim\(\)=1"):
        scaled_dot_product_attention(q[0, 0], k[0, 0], v[0, 0])


def test_head_errors_name_both_numbers() -> None:
    x, *ws = mha_inputs(2, 3, 10)
    for fn in (multi_head_attention, multi_head_attention_loop):
        with pytest.raises(ValueError, match=r"C=10 must be divisible by n_head=4"):
            fn(x, *ws, n_head=4)
        with pytest.raises(ValueError, match=r"n_head must be a positive integer, got 0"):
            fn(x, *ws, n_head=0)
        with pytest.raises(ValueError, match=r"w_k must have shape \(C, C\) = \(10, 10\), got \(10, 9\)"):
            fn(x, ws[0], ws[1][:, :9], ws[2], ws[3], n_head=2)
        with pytest.raises(ValueError, match=r"rank 2 shape \(3, 10\)"):
            fn(x[0], *ws, n_head=2)
    with pytest.raises(ValueError, match=r"C=10 must be divisible by n_head=3"):
        split_heads(x, 3)
    with pytest.raises(ValueError, match=r"rank 2 and shape \(3, 10\)"):
        split_heads(x[0], 2)
    with pytest.raises(ValueError, match=r"rank 3 and shape \(2, 3, 10\)"):
        merge_heads(x)
    with pytest.raises(ValueError, match=r"got 0"):
        causal_mask(0)
