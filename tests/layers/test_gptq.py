"""GPTQ: the Cholesky, lazy-batch algorithm equals explicit-inverse OBQ updates, and beats round-to-nearest."""

from __future__ import annotations

import pytest
import torch

from dlscratch.layers.gptq import gptq_hessian, gptq_quantize, layer_error, obq_quantize
from dlscratch.layers.quant_int import dequantize, fake_quantize


def _problem(d_out: int = 12, d_in: int = 48, n: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d_in, generator=g, dtype=torch.float64) @ torch.randn(d_in, d_in, generator=g, dtype=torch.float64)
    return torch.randn(d_out, d_in, generator=g, dtype=torch.float64), x  # correlated inputs


def test_hessian() -> None:
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    flat = x.reshape(10, 6)
    torch.testing.assert_close(gptq_hessian(x), 2 * flat.t() @ flat / 10)


@pytest.mark.parametrize("group_size, block_size", [(None, 128), (None, 5), (16, 128), (12, 7), (48, 1)])
@pytest.mark.parametrize("scheme", ["absmax", "zeropoint"])
def test_gptq_equals_obq_with_explicit_inverses(group_size: int | None, block_size: int, scheme: str) -> None:
    w, x = _problem()
    h = gptq_hessian(x)
    fast = gptq_quantize(w, h, 4, group_size, scheme=scheme, block_size=block_size)
    slow = obq_quantize(w, h, 4, group_size, scheme=scheme)
    assert torch.equal(fast.q, slow.q)
    torch.testing.assert_close(fast.scale, slow.scale)
    torch.testing.assert_close(fast.zero, slow.zero)


def test_gptq_beats_round_to_nearest_on_correlated_inputs() -> None:
    w, x = _problem()
    h = gptq_hessian(x)
    for bits, gs, gran in ((4, None, "channel"), (3, 16, "group")):
        gptq = layer_error(w, dequantize(gptq_quantize(w, h, bits, gs)), x)
        rtn = layer_error(w, fake_quantize(w, bits, "absmax", gran, gs), x)
        assert gptq < 0.8 * rtn


def test_gptq_is_round_to_nearest_when_inputs_are_uncorrelated() -> None:
    w = torch.randn(8, 32, dtype=torch.float64)
    h = 3.0 * torch.eye(32, dtype=torch.float64)  # a diagonal Hessian: no column can help another
    torch.testing.assert_close(dequantize(gptq_quantize(w, h, 4, 16, damp=0.0)), fake_quantize(w, 4, "absmax", "group", 16))


def test_dead_inputs_get_zero_weights() -> None:
    w, x = _problem(4, 8, 50)
    x[:, 2] = 0
    qt = gptq_quantize(w, gptq_hessian(x), 8)
    assert (qt.q[:, 2] == 0).all()


def test_bad_input() -> None:
    w, x = _problem(4, 48, 60)
    h = gptq_hessian(x)
    with pytest.raises(ValueError, match=r"bits must be one of \(2, 3, 4, 8\), got bits=5"):
        gptq_quantize(w, h, 5)
    with pytest.raises(ValueError, match="group_size=64 does not divide the row of 48 weights"):
        gptq_quantize(w, h, 4, 64)
    with pytest.raises(ValueError, match="Hessian"):
        gptq_quantize(w, h[:5, :5], 4)
    with pytest.raises(ValueError, match="damp must be >= 0"):
        gptq_quantize(w, h, 4, damp=-1.0)
