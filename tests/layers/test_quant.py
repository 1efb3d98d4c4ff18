"""4-bit quantisation: NF4's levels against the paper's table, blockwise absmax, double quantisation, packing."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlscratch.layers.quant import (
    NF4Linear,
    bits_per_parameter,
    dequantize_blockwise,
    double_dequantize,
    double_quantize,
    int4_levels,
    nf4_levels,
    pack_4bit,
    quantize_blockwise,
    quantize_dequantize,
    quantize_linears,
    unpack_4bit,
)

# Dettmers et al. (2023), QLoRA, Appendix E: the NF4 data type's 16 values, as printed there.
PAPER_NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
]


def test_nf4_levels_match_the_paper() -> None:
    ours = nf4_levels(torch.float64)
    torch.testing.assert_close(ours, torch.tensor(PAPER_NF4, dtype=torch.float64), atol=3e-7, rtol=0)  # float32 in the paper
    assert ours[7] == 0 and ours[0] == -1 and ours[-1] == 1


def test_nf4_levels_are_equal_mass_normal_quantiles() -> None:
    # independent formulation: the positive levels sit at equal steps of the normal CDF
    lv = nf4_levels(torch.float64)
    scale = torch.special.ndtri(torch.tensor(0.5 * ((1 - 1 / 30) + (1 - 1 / 32)), dtype=torch.float64))
    cdf = torch.special.ndtr(lv[8:] * scale)  # (8,)
    steps = cdf.diff()
    torch.testing.assert_close(steps, steps.mean().expand_as(steps), atol=1e-12, rtol=0)
    cdf_neg = torch.special.ndtr(-lv[:7] * scale)  # (7,)
    torch.testing.assert_close(cdf_neg.diff(), cdf_neg.diff().mean().expand(6), atol=1e-12, rtol=0)


def test_int4_levels() -> None:
    assert int4_levels(torch.float64).mul(7).tolist() == list(range(-7, 8))


@pytest.mark.parametrize("code", ["nf4", "int4"])
@pytest.mark.parametrize("n, block", [(128, 64), (192, 64), (30, 5), (7, 1)])
def test_blockwise_is_nearest_level_times_absmax(code: str, n: int, block: int) -> None:
    levels = nf4_levels(torch.float64) if code == "nf4" else int4_levels(torch.float64)
    w = torch.randn(n, dtype=torch.float64)
    codes, absmax = quantize_blockwise(w, levels, block)
    torch.testing.assert_close(absmax, w.view(-1, block).abs().amax(1), atol=0, rtol=0)
    normed = (w.view(-1, block) / absmax[:, None]).reshape(-1, 1)  # (n, 1)
    want = (normed - levels).abs().argmin(dim=1)  # brute force: the nearest of all levels
    assert torch.equal(codes.long(), want)
    w_hat = dequantize_blockwise(codes, absmax, levels)
    torch.testing.assert_close(w_hat, levels[want] * absmax.repeat_interleave(block), atol=0, rtol=0)
    # each block's largest weight is exact (it maps to +-1)
    idx = w.view(-1, block).abs().argmax(1)
    torch.testing.assert_close(w_hat.view(-1, block).gather(1, idx[:, None]), w.view(-1, block).gather(1, idx[:, None]))


def test_zero_block_and_nf4_beats_int4_on_gaussian_weights() -> None:
    w = torch.cat([torch.zeros(64), torch.randn(64 * 200)])
    assert quantize_dequantize(w)[:64].abs().max() == 0
    err = {c: (quantize_dequantize(w, c) - w).pow(2).mean() for c in ("nf4", "int4")}
    assert err["nf4"] < err["int4"]


def test_bad_block_size_names_both_numbers() -> None:
    with pytest.raises(ValueError, match=r"block_size=64 does not divide the tensor's 100 elements"):
        quantize_blockwise(torch.randn(10, 10), nf4_levels(), 64)
    with pytest.raises(ValueError, match=r"block_size=64 does not divide the tensor's 96 elements"):
        NF4Linear(torch.randn(8, 12))
    with pytest.raises(ValueError, match="block_size"):
        quantize_blockwise(torch.randn(8), nf4_levels(), 0)


@pytest.mark.parametrize("n", [0, 2, 10, 1000])
def test_pack_unpack_exact(n: int) -> None:
    codes = torch.randint(0, 16, (n,), dtype=torch.uint8)
    packed = pack_4bit(codes)
    assert packed.dtype == torch.uint8 and packed.numel() == n // 2
    assert torch.equal(unpack_4bit(packed), codes)
    if n:
        assert int(packed[0]) == 16 * int(codes[0]) + int(codes[1])


def test_pack_bad_input() -> None:
    with pytest.raises(ValueError, match="even number of codes, got 3"):
        pack_4bit(torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="got a code of 16"):
        pack_4bit(torch.tensor([1, 16]))


@pytest.mark.parametrize("n", [1, 255, 256, 700])
def test_double_quantisation_error_bound(n: int) -> None:
    s = torch.rand(n) * 0.1 + 0.01
    dq = double_quantize(s)
    assert dq.codes.dtype == torch.int8 and dq.scales.numel() == math.ceil(n / 256)
    back = double_dequantize(dq)
    assert back.shape == s.shape
    # the error of each scale is at most half a step of its block: max|s - mean| / 127 / 2
    c = torch.nn.functional.pad(s - s.mean(), (0, -n % 256)).view(-1, 256)
    step = (c.abs().amax(1) / 127).repeat_interleave(256)[:n]
    assert ((back - s).abs() <= step / 2 + 1e-7).all()


def test_bits_per_parameter_arithmetic() -> None:
    assert bits_per_parameter(double_quant=False) == 4 + 32 / 64 == 4.5
    assert bits_per_parameter() == 4 + 8 / 64 + 32 / (64 * 256)
    assert round(bits_per_parameter(double_quant=False) - bits_per_parameter(), 3) == 0.373


@pytest.mark.parametrize("double_quant", [True, False])
def test_nf4_linear(double_quant: bool) -> None:
    lin = nn.Linear(128, 96, dtype=torch.float64)
    q = NF4Linear.from_linear(lin, double_quant=double_quant)
    x = torch.randn(3, 5, 128, dtype=torch.float64, requires_grad=True)
    w_hat = quantize_dequantize(lin.weight.detach())
    tol = 0.0 if not double_quant else 2e-3 * lin.weight.abs().max().item()  # the 8-bit scales move it a little
    assert (q.dequantized_weight() - w_hat).abs().max() <= tol + 1e-6 * (not double_quant)
    y = q(x)
    torch.testing.assert_close(y, x @ q.dequantized_weight().T + lin.bias, atol=1e-12, rtol=0)
    y.sum().backward()
    assert x.grad is not None and not list(q.parameters())
    n = 128 * 96
    want = n // 2 + (n // 64 + 4 * math.ceil(n / 64 / 256) + 4 if double_quant else 4 * n // 64) + 96 * 8
    assert q.nbytes() == want


def test_quantize_linears_targets() -> None:
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    names = quantize_linears(model, ["0"])
    assert names == ["0"] and isinstance(model[0], NF4Linear) and isinstance(model[2], nn.Linear)
    with pytest.raises(ValueError, match="code must be one of"):
        NF4Linear(torch.randn(64, 64), code="fp4")
