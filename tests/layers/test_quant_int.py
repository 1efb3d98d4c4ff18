"""Integer quantisation against torch's quantized tensors; int8 matmul and LLM.int8() against float products."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.ao.quantization import PerChannelMinMaxObserver

from dlscratch.layers.int8 import Int8Linear, int8_matmul, int_matmul, llm_int8_matmul, outlier_columns
from dlscratch.layers.quant_int import (
    QuantLinear,
    code_range,
    dequantize,
    fake_quantize,
    quantize,
    quantize_model_linears,
    weight_bits,
)


def _torch_per_channel(w: torch.Tensor, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torch's observer picks the scales and zero points; torch.quantize_per_channel rounds."""
    if symmetric:  # int8 absmax: codes -127..127, scale = max|w| / 127
        obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127)
        dtype = torch.qint8
    else:  # uint8 zero-point: codes 0..255 over [min(w, 0), max(w, 0)]
        obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.quint8, qscheme=torch.per_channel_affine)
        dtype = torch.quint8
    obs(w)
    scale, zero = obs.calculate_qparams()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        q = torch.quantize_per_channel(w, scale.float(), zero, 0, dtype).int_repr()
    return q, scale, zero


@pytest.mark.parametrize("scheme", ["absmax", "zeropoint"])
@pytest.mark.parametrize("shape", [(16, 64), (1, 5), (7, 3, 3, 3)])
def test_per_channel_int8_equals_torch(scheme: str, shape: tuple[int, ...]) -> None:
    w = torch.randn(shape) * torch.rand(shape[0], *[1] * (len(shape) - 1)) * 3
    w[0].clamp_(min=0.1)  # a row with no negative weight: the zero-point range must still hold 0
    q_ref, s_ref, z_ref = _torch_per_channel(w, scheme == "absmax")
    qt = quantize(w, bits=8, scheme=scheme, granularity="channel")
    assert torch.equal(qt.q.to(torch.int32), q_ref.to(torch.int32))
    torch.testing.assert_close(qt.scale.squeeze(1), s_ref.float(), rtol=0, atol=0)
    assert torch.equal(qt.zero.squeeze(1).long(), z_ref.long())


def test_round_trip_error_is_at_most_half_a_step() -> None:
    w = torch.randn(32, 128, dtype=torch.float64)
    for scheme in ("absmax", "zeropoint"):
        for gran, g in (("tensor", None), ("channel", None), ("group", 32)):
            qt = quantize(w, 4, scheme, gran, g)
            err = (dequantize(qt) - w).abs().reshape(qt.scale.shape[0], -1)
            assert (err <= qt.scale / 2 + 1e-12).all()
            lo, hi = code_range(4, scheme)
            assert int(qt.q.min()) >= lo and int(qt.q.max()) <= hi


def test_finer_granularity_is_more_accurate() -> None:
    w = torch.randn(64, 256, dtype=torch.float64) * torch.logspace(-1, 1, 64, dtype=torch.float64)[:, None]
    errs = [(fake_quantize(w, 4, "absmax", g, s) - w).pow(2).mean().item()
            for g, s in (("tensor", None), ("channel", None), ("group", 64), ("group", 16))]
    assert errs == sorted(errs, reverse=True) and errs[-1] < errs[0] / 4


@pytest.mark.parametrize("bits", [1, 5, 16, 0, True])
def test_bits_outside_the_set_are_refused(bits: int) -> None:
    with pytest.raises(ValueError, match=r"bits must be one of \(2, 3, 4, 8\), got bits="):
        quantize(torch.randn(4, 8), bits=bits)


def test_group_size_must_divide_the_row() -> None:
    with pytest.raises(ValueError, match=r"group_size=64 does not divide the row of 352 weights"):
        quantize(torch.randn(4, 352), bits=4, granularity="group", group_size=64)
    with pytest.raises(ValueError, match="granularity must be one of"):
        quantize(torch.randn(4, 8), granularity="row")
    with pytest.raises(ValueError, match="scheme must be one of"):
        quantize(torch.randn(4, 8), scheme="minmax")


@pytest.mark.parametrize("bits, scheme", [(8, "absmax"), (4, "absmax"), (4, "zeropoint"), (3, "absmax"), (2, "zeropoint")])
def test_quant_linear_stores_and_computes_what_it_quantised(bits: int, scheme: str) -> None:
    lin = nn.Linear(64, 6)
    q = QuantLinear.from_linear(lin, bits=bits, scheme=scheme, granularity="group", group_size=32)
    qt = quantize(lin.weight, bits, scheme, "group", 32)
    assert torch.equal(q.quantized().q, qt.q)
    want = dequantize(qt._replace(scale=qt.scale.half().float()))  # scales are stored in float16
    torch.testing.assert_close(q.dequantized_weight(), want)
    x = torch.randn(3, 5, 64)
    torch.testing.assert_close(q(x), x @ want.t() + lin.bias)
    assert q.codes.numel() == (64 * 6 // 2 if bits == 4 else 64 * 6)  # two 4-bit codes per byte


def test_quantize_model_linears_swaps_only_the_targets() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    names = quantize_model_linears(model, ["0"], bits=8)
    assert names == ["0"] and isinstance(model[0], QuantLinear) and isinstance(model[2], nn.Linear)


def test_weight_bits() -> None:
    assert weight_bits(4, 64) == 4.25 and weight_bits(4, 64, "zeropoint") == 4 + 20 / 64
    with pytest.raises(ValueError, match="bits must be one of"):
        weight_bits(6, 64)


def test_int_matmul_is_exact() -> None:
    a = torch.randint(-127, 128, (33, 64), dtype=torch.int8)
    b = torch.randint(-127, 128, (64, 40), dtype=torch.int8)
    assert torch.equal(int_matmul(a, b), (a.long() @ b.long()).int())


def test_int8_matmul_matches_its_formula_and_the_float_product() -> None:
    x, w = torch.randn(20, 64, dtype=torch.float64), torch.randn(12, 64, dtype=torch.float64)
    qx, qw = quantize(x, 8), quantize(w, 8)
    want = (qx.q.double() @ qw.q.double().t()) * qx.scale * qw.scale.t()
    torch.testing.assert_close(int8_matmul(x, w), want)
    exact = x @ w.t()
    assert (int8_matmul(x, w) - exact).abs().max() < 0.03 * exact.abs().max()


def test_llm_int8_rescues_outlier_features() -> None:
    x, w = torch.randn(64, 128, dtype=torch.float64), torch.randn(32, 128, dtype=torch.float64) / 10
    x[:, [3, 77]] *= 40  # two outlier feature dimensions, as Dettmers et al. find in large models
    exact = x @ w.t()
    assert outlier_columns(x).sum() == 2
    plain, mixed = (int8_matmul(x, w) - exact).abs().mean(), (llm_int8_matmul(x, w) - exact).abs().mean()
    assert mixed < plain / 5
    torch.testing.assert_close(llm_int8_matmul(x, w, threshold=1e9), int8_matmul(x, w))  # no outliers: plain int8
    with pytest.raises(ValueError, match="threshold must be positive"):
        outlier_columns(x, 0.0)


def test_int8_linear() -> None:
    lin = nn.Linear(32, 8).double()
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    for threshold in (None, 2.0):
        y = Int8Linear.from_linear(lin, threshold)(x)
        assert y.shape == (2, 7, 8) and (y - lin(x)).abs().max() < 0.03 * lin(x).abs().max()
