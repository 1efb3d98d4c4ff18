"""Positional encodings: the sinusoidal table against an independent formula and its properties
(offset-only dot products, shifts are block rotations), the modules, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlscratch.layers import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_encoding,
    sinusoidal_frequencies,
)

DT = torch.float64


def reference_pe(T: int, C: int, base: float = 10000.0) -> torch.Tensor:
    """The paper's formula, one entry at a time with Python's math module."""
    rows = []
    for pos in range(T):
        row = []
        for j in range(C):
            angle = pos / base ** (2 * (j // 2) / C)
            row.append(math.sin(angle) if j % 2 == 0 else math.cos(angle))
        rows.append(row)
    return torch.tensor(rows, dtype=DT)


def rotation(k: int, C: int, base: float = 10000.0) -> torch.Tensor:
    """Block-diagonal R_k with R_k PE(p) = PE(p + k): a 2x2 rotation by k * omega_i per pair."""
    R = torch.zeros(C, C, dtype=DT)
    for i in range(C // 2):
        a = k / base ** (2 * i / C)
        # (sin(w(p+k)), cos(w(p+k))) = [[cos wk, sin wk], [-sin wk, cos wk]] (sin wp, cos wp)
        R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]], dtype=DT
        )
    return R


@pytest.mark.parametrize("T,C", [(1, 2), (7, 4), (50, 16), (3, 64), (128, 10)])
@pytest.mark.parametrize("base", [10000.0, 100.0])
def test_table_matches_formula(T: int, C: int, base: float) -> None:
    pe = sinusoidal_encoding(T, C, base, dtype=DT)
    assert pe.shape == (T, C) and pe.dtype == DT
    torch.testing.assert_close(pe, reference_pe(T, C, base), atol=1e-12, rtol=0)
    omega = sinusoidal_frequencies(C, base)
    torch.testing.assert_close(omega, torch.tensor([base ** (-2 * i / C) for i in range(C // 2)], dtype=DT))


def test_default_dtype_and_device() -> None:
    pe = sinusoidal_encoding(10, 8)
    assert pe.dtype == torch.float32 and pe.device.type == "cpu"
    torch.testing.assert_close(pe, reference_pe(10, 8).float())


@pytest.mark.parametrize("C", [2, 8, 64])
def test_dot_product_depends_only_on_offset(C: int) -> None:
    T = 200
    pe = sinusoidal_encoding(T, C, dtype=DT)
    gram = pe @ pe.T  # (T, T)
    omega = sinusoidal_frequencies(C)
    for k in (0, 1, 5, 37, 150):
        diag = gram.diagonal(k)  # <PE(p), PE(p + k)> for every p
        expected = torch.cos(omega * k).sum()  # sum_i cos(omega_i k), from sin a sin b + cos a cos b = cos(a - b)
        torch.testing.assert_close(diag, expected.expand_as(diag), atol=1e-9, rtol=0)
        torch.testing.assert_close(gram.diagonal(-k), diag, atol=1e-9, rtol=0)  # symmetric in k
    torch.testing.assert_close(gram.diagonal(), torch.full((T,), C / 2, dtype=DT))  # |PE(p)|^2 = C/2


@pytest.mark.parametrize("C", [2, 6, 32])
@pytest.mark.parametrize("k", [1, 3, 40, -7])
def test_shift_is_a_block_rotation(C: int, k: int) -> None:
    T = 100
    pe = sinusoidal_encoding(T, C, dtype=DT)
    R = rotation(k, C)
    torch.testing.assert_close(R @ R.T, torch.eye(C, dtype=DT), atol=1e-12, rtol=0)  # orthogonal
    p = torch.arange(max(0, -k), min(T, T - k))  # p and p + k both in range
    torch.testing.assert_close(pe[p] @ R.T, pe[p + k], atol=1e-9, rtol=0)  # PE(p + k) = R_k PE(p), all p
    # the same R_k for every p: it is a linear map that does not depend on the position
    torch.testing.assert_close(rotation(k, C) @ rotation(2, C), rotation(k + 2, C), atol=1e-12, rtol=0)


def test_sinusoidal_module_adds_table() -> None:
    B, T, C = 3, 9, 12
    m = SinusoidalPositionalEncoding(C, max_len=20, dtype=DT)
    x = torch.randn(B, T, C, dtype=DT)
    torch.testing.assert_close(m(x), x + reference_pe(T, C), atol=1e-12, rtol=0)
    torch.testing.assert_close(m(x, offset=11), x + reference_pe(20, C)[11:], atol=1e-12, rtol=0)
    scaled = SinusoidalPositionalEncoding(C, max_len=20, scale_input=True, dtype=DT)
    torch.testing.assert_close(scaled(x), math.sqrt(C) * x + reference_pe(T, C), atol=1e-12, rtol=0)
    assert list(m.parameters()) == [] and "pe" not in m.state_dict()  # a non-persistent buffer
    assert m.pe.shape == (20, C)


def test_sinusoidal_module_follows_dtype_and_dropout() -> None:
    m = SinusoidalPositionalEncoding(8, max_len=16, dropout=0.5)
    x = torch.randn(2, 5, 8, dtype=DT)
    m.eval()
    assert m(x).dtype == DT
    torch.testing.assert_close(m(x), x + reference_pe(5, 8), atol=1e-6, rtol=0)  # eval: no dropout
    m.train()
    y = m(torch.zeros(200, 5, 8))
    zero_pe = (reference_pe(5, 8) == 0).double().mean().item()  # sin(0) = 0: some entries are zero anyway
    assert (y == 0).float().mean().item() == pytest.approx(0.5 + 0.5 * zero_pe, abs=0.02)
    assert m.double().pe.dtype == DT


def test_learned_embedding() -> None:
    B, T, C, L = 2, 6, 5, 10
    m = LearnedPositionalEmbedding(C, L, dtype=DT)
    assert m.weight.shape == (L, C) and sum(p.numel() for p in m.parameters()) == L * C
    assert "weight" in m.state_dict()
    x = torch.randn(B, T, C, dtype=DT)
    torch.testing.assert_close(m(x), x + m.weight[:T])
    torch.testing.assert_close(m(x, offset=4), x + m.weight[4:])
    # same layout as nn.Embedding(max_len, d_model): its state dict loads, and the lookup agrees
    emb = nn.Embedding(L, C, dtype=DT)
    m.load_state_dict(emb.state_dict())
    torch.testing.assert_close(m(x), x + emb(torch.arange(T)))
    # every position used gets a gradient, unused ones none
    m.weight.grad = None
    m(x).sum().backward()
    assert (m.weight.grad[:T] == B).all() and (m.weight.grad[T:] == 0).all()
    assert 0.01 < LearnedPositionalEmbedding(64, 512).weight.std().item() < 0.03  # init_std 0.02


@pytest.mark.parametrize("C", [3, 7, 0, -2])
def test_odd_or_bad_width_is_rejected(C: int) -> None:
    with pytest.raises(ValueError, match=rf"even integer, got {C}"):
        sinusoidal_encoding(4, C)
    with pytest.raises(ValueError, match=rf"even integer, got {C}"):
        SinusoidalPositionalEncoding(C)


def test_errors_name_the_values() -> None:
    with pytest.raises(ValueError, match=r"positive integer, got 0"):
        sinusoidal_encoding(0, 4)
    for m in (SinusoidalPositionalEncoding(8, max_len=16), LearnedPositionalEmbedding(8, 16)):
        with pytest.raises(ValueError, match=r"T=17 exceeds max_len=16"):
            m(torch.zeros(1, 17, 8))
        with pytest.raises(ValueError, match=r"offset \+ T = 10 \+ 7 = 17 exceed max_len=16"):
            m(torch.zeros(1, 7, 8), offset=10)
        with pytest.raises(ValueError, match=r"offset must be non-negative, got -1"):
            m(torch.zeros(1, 7, 8), offset=-1)
        with pytest.raises(ValueError, match=r"d_model=8\), got \(1, 7, 6\)"):
            m(torch.zeros(1, 7, 6))
        with pytest.raises(ValueError, match=r"got \(7, 8\)"):
            m(torch.zeros(7, 8))
    with pytest.raises(ValueError, match=r"max_len must be a positive integer, got 0"):
        LearnedPositionalEmbedding(8, 0)
