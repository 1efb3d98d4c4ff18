"""MultiHeadAttention (written and SDPA attend) against nn.MultiheadAttention(batch_first=True).

Weights are copied across; outputs, attention weights (averaged and per head), the input
gradients and every parameter gradient are compared in float64, with and without bias, for
self- and cross-attention (T != S), causal, bool and key-padding masks, over awkward sizes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from functools import partial

from dlscratch.layers import MultiHeadAttention, causal_mask

DT = torch.float64
FastMultiHeadAttention = partial(MultiHeadAttention, attend="sdpa")  # the same module, SDPA attend

# B, T, S, C, nh
SHAPES = [
    (2, 5, 5, 8, 2),
    (2, 4, 7, 12, 3),  # cross-attention, S > T
    (3, 6, 2, 6, 6),  # S < T, head size 1
    (1, 1, 1, 8, 4),  # one token
    (2, 1, 5, 7, 1),  # one query, odd C, one head
    (2, 3, 3, 15, 5),  # odd C, odd head size
]


def torch_mha(C: int, nh: int, bias: bool) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(C, nh, bias=bias, batch_first=True, dtype=DT)
    with torch.no_grad():  # torch zero-initialises the biases: make them matter
        for p in mha.parameters():
            p.copy_(torch.randn_like(p) / C**0.5)
    return mha


def inputs(B: int, T: int, S: int, C: int, self_attention: bool) -> list[torch.Tensor]:
    q = torch.randn(B, T, C, dtype=DT)
    if self_attention:
        return [q]
    return [q, torch.randn(B, S, C, dtype=DT), torch.randn(B, S, C, dtype=DT)]


def compare_with_torch(
    B: int, T: int, S: int, C: int, nh: int, *, bias: bool, ours_kw: dict, torch_kw: dict, average: bool = True
) -> None:
    """Forward output and weights, then the gradients of the inputs and of every parameter."""
    self_attention = T == S and not torch_kw.get("cross", False)
    torch_kw = {k: v for k, v in torch_kw.items() if k != "cross"}
    ref = torch_mha(C, nh, bias)
    ours = MultiHeadAttention.from_torch(ref)
    xs = inputs(B, T, S, C, self_attention)
    a_in = [x.clone().requires_grad_() for x in xs]
    b_in = [x.clone().requires_grad_() for x in xs]
    y, w = ours(*a_in, **ours_kw, average_attn_weights=average)
    y_ref, w_ref = ref(*(b_in * 3 if self_attention else b_in), **torch_kw, average_attn_weights=average)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(w, w_ref, atol=1e-12, rtol=1e-10)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    for i, (a, b) in enumerate(zip(a_in, b_in)):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=1e-10, msg=lambda m, i=i: f"d input {i}: {m}")
    d_in_w = torch.cat([ours.q_proj.weight.grad, ours.k_proj.weight.grad, ours.v_proj.weight.grad])
    torch.testing.assert_close(d_in_w, ref.in_proj_weight.grad, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(ours.out_proj.weight.grad, ref.out_proj.weight.grad, atol=1e-12, rtol=1e-10)
    if bias:
        d_in_b = torch.cat([ours.q_proj.bias.grad, ours.k_proj.bias.grad, ours.v_proj.bias.grad])
        torch.testing.assert_close(d_in_b, ref.in_proj_bias.grad, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(ours.out_proj.bias.grad, ref.out_proj.bias.grad, atol=1e-12, rtol=1e-10)
    else:
        assert all(p.bias is None for p in (ours.q_proj, ours.k_proj, ours.v_proj, ours.out_proj))


@pytest.mark.parametrize("B,T,S,C,nh", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("average", [True, False])
def test_matches_torch_no_mask(B: int, T: int, S: int, C: int, nh: int, bias: bool, average: bool) -> None:
    compare_with_torch(B, T, S, C, nh, bias=bias, ours_kw={}, torch_kw={}, average=average)


@pytest.mark.parametrize("B,T,S,C,nh", SHAPES)
def test_matches_torch_cross_attention(B: int, T: int, S: int, C: int, nh: int) -> None:
    compare_with_torch(B, T, S, C, nh, bias=True, ours_kw={}, torch_kw={"cross": True}, average=False)


@pytest.mark.parametrize("B,T,S,C,nh", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_causal(B: int, T: int, S: int, C: int, nh: int, bias: bool) -> None:
    # top-left-aligned causal mask (j <= i), also for S != T: every query keeps key 0
    blocked = torch.ones(T, S, dtype=torch.bool).triu(1)
    compare_with_torch(B, T, S, C, nh, bias=bias, ours_kw={"is_causal": True}, torch_kw={"attn_mask": blocked})


@pytest.mark.parametrize("B,T,S,C,nh", SHAPES)
def test_matches_torch_key_padding(B: int, T: int, S: int, C: int, nh: int) -> None:
    lengths = torch.randint(1, S + 1, (B,))
    lengths[0] = S  # one row without padding
    pad = torch.arange(S)[None, :] >= lengths[:, None]  # (B, S), True = padding, as torch
    compare_with_torch(
        B, T, S, C, nh, bias=True, ours_kw={"key_padding_mask": pad}, torch_kw={"key_padding_mask": pad, "cross": True}
    )


@pytest.mark.parametrize("B,T,S,C,nh", SHAPES)
@pytest.mark.parametrize("mask_rank", [2, 3, 4])
def test_matches_torch_bool_mask_and_padding(B: int, T: int, S: int, C: int, nh: int, mask_rank: int) -> None:
    shape = {2: (T, S), 3: (B, T, S), 4: (B, nh, T, S)}[mask_rank]
    allowed = torch.rand(shape) < 0.6
    allowed[..., 0] = True  # every query keeps key 0 ...
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[:, S // 2 + 1 :] = True  # ... and padding never removes key 0
    blocked = ~allowed  # torch's convention: True = blocked, 3-D masks are (B * nh, T, S)
    if mask_rank == 3:
        blocked = blocked.repeat_interleave(nh, dim=0)
    elif mask_rank == 4:
        blocked = blocked.reshape(B * nh, T, S)
    compare_with_torch(
        B,
        T,
        S,
        C,
        nh,
        bias=True,
        ours_kw={"mask": allowed, "key_padding_mask": pad},
        torch_kw={"attn_mask": blocked, "key_padding_mask": pad, "cross": True},
        average=False,
    )


def test_masked_keys_get_zero_weight() -> None:
    mha = MultiHeadAttention(8, 2, dtype=DT)
    x = torch.randn(2, 5, 8, dtype=DT)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    _, w = mha(x, key_padding_mask=pad, is_causal=True, average_attn_weights=False)
    assert (w[1, ..., 3:] == 0).all() and (w.triu(1) == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 5, dtype=DT))


def test_fully_masked_query() -> None:
    slow = MultiHeadAttention(8, 2, dtype=DT)
    fast = FastMultiHeadAttention(8, 2, dtype=DT)
    fast.load_state_dict(slow.state_dict())
    x = torch.randn(2, 3, 8, dtype=DT)
    pad = torch.tensor([[False] * 3, [True] * 3])  # sequence 1 has no key at all
    y_slow, y_fast = slow(x, key_padding_mask=pad)[0], fast(x, key_padding_mask=pad)[0]
    assert torch.isnan(y_slow[1]).all() and not torch.isnan(y_slow[0]).any()  # no defined softmax
    torch.testing.assert_close(y_fast[1], fast.out_proj.bias.expand(3, 8))  # attention step gives zeros
    torch.testing.assert_close(y_fast[0], y_slow[0])


def test_need_weights_false() -> None:
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 5, 8)
    y, w = mha(x, need_weights=False)
    assert w is None
    torch.testing.assert_close(y, mha(x)[0])


@pytest.mark.parametrize("bias", [True, False])
def test_weights_round_trip_to_torch(bias: bool) -> None:
    ours = MultiHeadAttention(12, 3, bias=bias, dtype=DT)
    ref = ours.copy_to_torch(nn.MultiheadAttention(12, 3, bias=bias, batch_first=True, dtype=DT))
    back = MultiHeadAttention.from_torch(ref)
    for (name, a), b in zip(ours.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), name
    x = torch.randn(2, 4, 12, dtype=DT)
    torch.testing.assert_close(ours(x)[0], ref(x, x, x)[0], atol=1e-12, rtol=1e-10)


def test_parameter_count_and_names() -> None:
    for C, nh, bias in [(8, 2, True), (12, 3, False), (7, 7, True)]:
        mha = MultiHeadAttention(C, nh, bias=bias)
        n = sum(p.numel() for p in mha.parameters())
        assert n == 4 * C * C + (4 * C if bias else 0)
        assert n == sum(p.numel() for p in nn.MultiheadAttention(C, nh, bias=bias).parameters())
    names = [name for name, _ in MultiHeadAttention(8, 2).named_parameters()]
    assert names == [f"{p}_proj.{w}" for p in "qkv" for w in ("weight", "bias")] + ["out_proj.weight", "out_proj.bias"]


# ---------------------------------------------------------------- the fast variant


@pytest.mark.parametrize("B,T,S,C,nh", SHAPES)
@pytest.mark.parametrize("case", ["plain", "causal", "padding", "mask", "mask+causal+padding"])
def test_fast_equals_hand_written(B: int, T: int, S: int, C: int, nh: int, case: str) -> None:
    slow = MultiHeadAttention(C, nh, dtype=DT)
    with torch.no_grad():
        for p in slow.parameters():
            p.copy_(torch.randn_like(p) / C**0.5)
    fast = FastMultiHeadAttention(C, nh, dtype=DT)
    fast.load_state_dict(slow.state_dict())  # same parameter names
    pad = torch.zeros(B, S, dtype=torch.bool)
    pad[:, S // 2 + 1 :] = True
    allowed = torch.rand(B, T, S) < 0.5
    allowed[..., 0] = True
    kw = {
        "plain": {},
        "causal": {"is_causal": True},
        "padding": {"key_padding_mask": pad},
        "mask": {"mask": allowed},
        "mask+causal+padding": {"mask": allowed, "is_causal": True, "key_padding_mask": pad},
    }[case]
    xs = inputs(B, T, S, C, self_attention=False)
    a_in = [x.clone().requires_grad_() for x in xs]
    b_in = [x.clone().requires_grad_() for x in xs]
    y_slow = slow(*a_in, **kw)[0]
    y_fast, w_fast = fast(*b_in, **kw)
    assert w_fast is None  # the fused kernel never forms the weights
    torch.testing.assert_close(y_fast, y_slow, atol=1e-12, rtol=1e-10)
    g = torch.randn_like(y_slow)
    (y_slow * g).sum().backward()
    (y_fast * g).sum().backward()
    for a, b in zip(a_in, b_in):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-12, rtol=1e-10)
    for (name, p), q in zip(slow.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-12, rtol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("cls", [MultiHeadAttention, FastMultiHeadAttention])
def test_causality(cls) -> None:
    mha = cls(12, 3, dtype=DT)
    x = torch.randn(2, 6, 12, dtype=DT)

    def out(x: torch.Tensor) -> torch.Tensor:
        return mha(x, is_causal=True)[0]

    y = out(x)
    for t in range(5):
        x2 = x.clone()
        x2[:, t + 1] += 1.0  # change token t+1 only
        y2 = out(x2)
        torch.testing.assert_close(y2[:, : t + 1], y[:, : t + 1], atol=0, rtol=0)
        assert not torch.allclose(y2[:, t + 1], y[:, t + 1])


def test_permutation_equivariance_without_mask() -> None:
    mha = MultiHeadAttention(8, 2, dtype=DT)
    x = torch.randn(2, 7, 8, dtype=DT)
    perm = torch.randperm(7)
    torch.testing.assert_close(mha(x[:, perm])[0], mha(x)[0][:, perm])


def test_causal_mask_matches_explicit_mask() -> None:
    mha = MultiHeadAttention(8, 2, dtype=DT)
    x = torch.randn(2, 5, 8, dtype=DT)
    torch.testing.assert_close(mha(x, is_causal=True)[0], mha(x, mask=causal_mask(5))[0], atol=0, rtol=0)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("cls", [MultiHeadAttention, FastMultiHeadAttention])
def test_config_errors_name_both_numbers(cls) -> None:
    with pytest.raises(ValueError, match=r"embed_dim=10 must be divisible by num_heads=4"):
        cls(10, 4)
    with pytest.raises(ValueError, match=r"num_heads must be a positive integer, got 0"):
        cls(8, 0)
    with pytest.raises(ValueError, match=r"embed_dim must be a positive integer, got 8.0"):
        cls(8.0, 2)


@pytest.mark.parametrize("cls", [MultiHeadAttention, FastMultiHeadAttention])
def test_input_errors(cls) -> None:
    mha = cls(8, 2)
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=r"query must have shape \(B, L, embed_dim=8\), got \(2, 5, 6\)"):
        mha(x[..., :6])
    with pytest.raises(ValueError, match=r"key must have shape .* got \(5, 8\)"):
        mha(x, x[0], x[0])
    with pytest.raises(ValueError, match=r"same batch size, got 2, 1, 1"):
        mha(x, x[:1], x[:1])
    with pytest.raises(ValueError, match=r"same length S, got 5 and 3"):
        mha(x, x, x[:, :3])
    with pytest.raises(ValueError, match=r"got dtype torch.float32"):
        mha(x, mask=torch.ones(5, 5))
    with pytest.raises(ValueError, match=r"got shape \(5,\)"):
        mha(x, mask=torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, S\) = \(2, 5\), got \(2, 4\)"):
        mha(x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"True = padding\), got dtype torch.int64"):
        mha(x, key_padding_mask=torch.zeros(2, 5, dtype=torch.long))


def test_torch_conversion_errors() -> None:
    ours = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"ours has embed_dim=8, num_heads=2, num_kv_heads=2; torch's has embed_dim=8, num_heads=4"):
        ours.load_from_torch(nn.MultiheadAttention(8, 4, batch_first=True))
    with pytest.raises(ValueError, match=r"bias mismatch: ours bias=True, torch's bias=False"):
        ours.load_from_torch(nn.MultiheadAttention(8, 2, bias=False, batch_first=True))
    with pytest.raises(ValueError, match=r"kdim = vdim = embed_dim"):
        ours.load_from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4, batch_first=True))
    with pytest.raises(TypeError, match=r"got Linear"):
        ours.copy_to_torch(nn.Linear(8, 8))
