"""Model-level GPTQ: each layer quantised on inputs from the already-quantised layers before it; size on disk."""

from __future__ import annotations

import copy

import torch
from torch import nn

from dlscratch.layers.gptq import gptq_hessian, gptq_quantize
from dlscratch.layers.quant_int import QuantLinear, dequantize, quantize_model_linears
from dlscratch.training.compress import gptq_quantize_model, layer_inputs, saved_bytes


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).double()


def test_layer_inputs() -> None:
    model, x = _model(), torch.randn(5, 3, 16, dtype=torch.float64)
    got = layer_inputs(model, model[2], lambda m: (m(x[:2]), m(x[2:])))
    torch.testing.assert_close(got, torch.relu(model[0](x)).reshape(-1, 32))
    dropped = nn.Sequential(nn.Dropout(0.5), nn.Linear(16, 4)).double().train()
    torch.testing.assert_close(layer_inputs(dropped, dropped[1], lambda m: m(x)), x.reshape(-1, 16))
    assert dropped.training  # restored


def test_gptq_model_is_sequential() -> None:
    model, x = _model(), torch.randn(64, 16, dtype=torch.float64)
    ref = copy.deepcopy(model)
    names = gptq_quantize_model(model, lambda m: m(x), ["0", "2"], bits=4, group_size=8)
    assert names == ["0", "2"] and all(isinstance(model[i], QuantLinear) for i in (0, 2))
    first = gptq_quantize(ref[0].weight, gptq_hessian(x), 4, 8)
    torch.testing.assert_close(model[0].dequantized_weight(), dequantize(first._replace(scale=first.scale.half().double())))
    h2 = gptq_hessian(torch.relu(model[0](x)))  # the second layer sees the quantised first layer's outputs
    second = gptq_quantize(ref[2].weight, h2, 4, 8)
    assert torch.equal(model[2].quantized().q, second.q)


def test_saved_bytes_shrink_about_fourfold_at_int8() -> None:
    model = nn.Sequential(nn.Linear(256, 256, bias=False), nn.Linear(256, 256, bias=False))
    before = saved_bytes(model)
    quantize_model_linears(model, ["0", "1"], bits=8)
    after = saved_bytes(model)
    assert before > 2 * 256 * 256 * 4 and 3.5 < before / after < 4.0
