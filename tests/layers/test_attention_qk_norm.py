"""QKNormAttention (chapter 21) against a reference written with torch's functions; the squared-ReLU MLP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlscratch.layers import MLP, QKNormAttention, RoPE, relu2
from tests.helpers import assert_same_forward_backward


class Reference(nn.Module):
    """RMS-normalise each head's q and k (F.rms_norm), rotate them, torch's causal SDPA with repeated kv heads."""

    def __init__(self, ours: QKNormAttention) -> None:
        super().__init__()
        self.ours = ours  # shares the parameters: the same names on both sides

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.ours
        B, T, C = x.shape
        q = a.q_proj(x).view(B, T, a.num_heads, a.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = a.k_proj(x).view(B, T, a.num_kv_heads, a.head_dim).transpose(1, 2)  # (B, nkv, T, hs)
        v = a.v_proj(x).view(B, T, a.num_kv_heads, a.head_dim).transpose(1, 2)
        q = F.rms_norm(q, (a.head_dim,), a.q_norm.weight, a.q_norm.eps)
        k = F.rms_norm(k, (a.head_dim,), a.k_norm.weight, a.k_norm.eps)
        if a.positions is not None:
            pos = torch.arange(T)
            q, k = a.positions.rotate(q, pos), a.positions.rotate(k, pos)
        rep = a.num_heads // a.num_kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return a.out_proj(y.transpose(1, 2).reshape(B, T, C))


@pytest.mark.parametrize(("nh", "nkv", "rope", "attend"), [(4, 2, True, "written"), (4, 1, False, "sdpa"), (2, 2, True, "sdpa"), (4, 4, True, "written")])
@pytest.mark.parametrize("T", [1, 7])
def test_qk_norm_attention_equals_the_reference(nh: int, nkv: int, rope: bool, attend: str, T: int) -> None:
    ours = QKNormAttention(16, nh, nkv, bias=False, causal=True, attend=attend).double()
    with torch.no_grad():
        ours.q_norm.weight.uniform_(0.5, 1.5)
        ours.k_norm.weight.uniform_(0.5, 1.5)
    if rope:
        ours.positions = RoPE(16 // nh).hook()
    ref = Reference(ours)
    x = torch.randn(3, T, 16, dtype=torch.float64)
    assert_same_forward_backward(lambda h: ours(h)[0], ref, [x], modules=(ours, ours))
    assert ours.q_norm.weight.grad is not None


def test_qk_norm_makes_attention_blind_to_the_scale_of_queries_and_keys() -> None:
    ours = QKNormAttention(16, 4, 2, bias=False, causal=True, eps=1e-30).double()  # no eps: exact invariance
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    before = ours(x)[0]
    with torch.no_grad():
        ours.q_proj.weight.mul_(1000.0)  # huge queries: plain attention would go one-hot
        ours.k_proj.weight.mul_(10.0)
    torch.testing.assert_close(ours(x)[0], before, rtol=0, atol=1e-10)  # rms(c q) = c rms(q)


def test_qk_norm_under_a_kv_cache_equals_the_full_pass() -> None:
    ours = QKNormAttention(16, 4, 2, bias=False, causal=True).double().eval()
    ours.positions = RoPE(4).hook()
    x = torch.randn(2, 8, 16, dtype=torch.float64)
    full = ours(x)[0]
    from dlscratch.layers import KVCache

    ours.cache = KVCache(2, 2, 8, 4, dtype=torch.float64)
    steps = torch.cat([ours(x[:, t : t + 1])[0] for t in range(8)], dim=1)
    torch.testing.assert_close(steps, full, rtol=0, atol=1e-12)


def test_relu2_is_the_squared_relu_and_an_mlp_activation() -> None:
    x = torch.randn(50, dtype=torch.float64, requires_grad=True)
    assert_same_forward_backward(relu2, lambda h: torch.relu(h) ** 2, [x])
    mlp = MLP(8, 12, activation="relu2", bias=True).double()
    h = torch.randn(2, 3, 8, dtype=torch.float64)
    torch.testing.assert_close(mlp(h), mlp.down(torch.relu(mlp.up(h)).pow(2)), rtol=0, atol=0)
