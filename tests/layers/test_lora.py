"""LoRA: equal to peft's LoRA (output and every gradient, float64), the base at step 0, merging, adapters."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dlscratch.layers.lora import (
    LoRALinear,
    add_lora,
    load_lora_state_dict,
    lora_modules,
    lora_state_dict,
    low_rank_factors,
    merge_lora,
    unmerge_lora,
)
from dlscratch.layers.quant import NF4Linear, quantize_linears
from tests.helpers import assert_same_forward_backward


class TwoLayer(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


def _randomise_b(model: nn.Module) -> None:
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.normal_(0.0, 0.3)  # B = 0 would leave A's gradient at zero and hide a mix-up


@pytest.mark.parametrize("d_in, d_hidden, d_out, r, alpha", [(7, 5, 3, 2, 4.0), (4, 9, 4, 1, 1.0), (6, 6, 6, 6, 12.0)])
def test_equals_peft_output_and_every_gradient(d_in: int, d_hidden: int, d_out: int, r: int, alpha: float) -> None:
    peft = pytest.importorskip("peft")
    base = TwoLayer(d_in, d_hidden, d_out).double()
    ours = copy.deepcopy(base)
    add_lora(ours, ["fc1", "fc2"], r, alpha)
    _randomise_b(ours)
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=["fc1", "fc2"], lora_dropout=0.0)
    theirs = peft.get_peft_model(copy.deepcopy(base), cfg)
    named = dict(theirs.named_parameters())
    with torch.no_grad():
        for name, m in lora_modules(ours).items():
            named[f"base_model.model.{name}.lora_A.default.weight"].copy_(m.lora_A)
            named[f"base_model.model.{name}.lora_B.default.weight"].copy_(m.lora_B)

    def grads(prefix: str, suffix: str):  # noqa: ANN202
        return lambda model: {f"{n}.{p}": dict(model.named_parameters())[f"{prefix}{n}.{p}{suffix}"].grad
                              for n in ("fc1", "fc2") for p in ("lora_A", "lora_B")}

    x = torch.randn(3, 4, d_in, dtype=torch.float64)
    assert_same_forward_backward(ours, theirs, [x], modules=(ours, theirs),
                                 grads=(grads("", ""), grads("base_model.model.", ".default.weight")))
    merged = theirs.merge_and_unload()
    merge_lora(ours)
    for name in ("fc1", "fc2"):
        torch.testing.assert_close(getattr(ours, name).base.weight, getattr(merged, name).weight, atol=1e-12, rtol=0)


def test_init_is_the_base_and_only_adapters_train() -> None:
    model = TwoLayer(8, 16, 4)
    base = copy.deepcopy(model)
    names = add_lora(model, ["fc1", "fc2"], r=3, alpha=6.0)
    assert names == ["fc1", "fc2"]
    x = torch.randn(5, 8)
    torch.testing.assert_close(model(x), base(x), atol=0, rtol=0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc1.lora_A", "fc1.lora_B", "fc2.lora_A", "fc2.lora_B"}
    assert model.fc1.scaling == 2.0 and model.fc1.lora_A.shape == (3, 8) and model.fc1.lora_B.shape == (16, 3)
    assert torch.count_nonzero(model.fc1.lora_B) == 0 and torch.count_nonzero(model.fc1.lora_A) == 3 * 8


def test_forward_is_the_formula() -> None:
    layer = LoRALinear(nn.Linear(6, 5, dtype=torch.float64), r=2, alpha=3.0)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(4, 6, dtype=torch.float64)
    W = layer.base.weight + 1.5 * layer.lora_B @ layer.lora_A  # alpha / r = 1.5
    torch.testing.assert_close(layer(x), x @ W.T + layer.base.bias, atol=1e-12, rtol=0)


def test_merge_unmerge_round_trip_and_double_merge() -> None:
    model = TwoLayer(10, 12, 6).double()
    add_lora(model, ["fc1", "fc2"], r=4)
    _randomise_b(model)
    x = torch.randn(7, 10, dtype=torch.float64)
    before = model(x)
    w0 = model.fc1.base.weight.clone()
    merge_lora(model)
    assert (model(x) - before).abs().max() <= 1e-10
    with pytest.raises(ValueError, match=r"already merged \(merged=True\).*\(1/4\) BA"):
        model.fc1.merge()
    unmerge_lora(model)
    torch.testing.assert_close(model.fc1.base.weight, w0, atol=1e-14, rtol=0)
    with pytest.raises(ValueError, match="not merged"):
        model.fc1.unmerge()


@pytest.mark.parametrize("r", [0, -1, 7, 2.0, True])
def test_bad_rank(r: object) -> None:
    with pytest.raises(ValueError) as err:
        LoRALinear(nn.Linear(9, 6), r=r)  # type: ignore[arg-type]
    assert f"r={r!r}" in str(err.value) and "[1, 6]" in str(err.value) and "9 -> 6" in str(err.value)


def test_no_target_and_bad_alpha() -> None:
    with pytest.raises(ValueError, match="q_proj"):
        add_lora(TwoLayer(3, 3, 3), ["q_proj"], r=1)
    with pytest.raises(ValueError, match="alpha=0"):
        LoRALinear(nn.Linear(3, 3), r=1, alpha=0)


def test_switching_adapters_between_tasks() -> None:
    model = TwoLayer(6, 8, 5).double()
    add_lora(model, ["fc1", "fc2"], r=2)
    x = torch.randn(3, 6, dtype=torch.float64)
    tasks = {}
    for task in ("a", "b"):
        _randomise_b(model)
        with torch.no_grad():
            for m in lora_modules(model).values():
                m.lora_A.normal_()
        tasks[task] = (lora_state_dict(model), model(x).detach())
    merge_lora(model)  # switching works merged too
    for task in ("a", "b", "a"):
        load_lora_state_dict(model, tasks[task][0])
        torch.testing.assert_close(model(x), tasks[task][1], atol=1e-12, rtol=0)
    assert set(tasks["a"][0]) == {"fc1.lora_A", "fc1.lora_B", "fc2.lora_A", "fc2.lora_B"}
    bad = dict(tasks["a"][0], **{"fc1.lora_A": torch.zeros(3, 6, dtype=torch.float64)})
    with pytest.raises(ValueError, match="does not fit"):
        load_lora_state_dict(model, bad)


def test_lora_on_a_quantised_base() -> None:
    model = TwoLayer(64, 32, 16).double()
    quantize_linears(model, ["fc1", "fc2"])
    assert isinstance(model.fc1, NF4Linear)
    add_lora(model, ["fc1", "fc2"], r=4)
    assert model.fc1.lora_A.dtype == torch.float64
    _randomise_b(model)
    x = torch.randn(2, 64, dtype=torch.float64, requires_grad=True)
    y = model(x)
    W = model.fc1.base.dequantized_weight()
    h = torch.tanh(x @ (W + model.fc1.delta_weight()).T + model.fc1.base.bias)
    torch.testing.assert_close(y, h @ (model.fc2.base.dequantized_weight() + model.fc2.delta_weight()).T, atol=1e-12, rtol=0)
    y.sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is not None] == [
        "fc1.lora_A", "fc1.lora_B", "fc2.lora_A", "fc2.lora_B"]
    with pytest.raises(TypeError, match="NF4Linear"):
        model.fc1.merge()


@pytest.mark.parametrize("shape, r", [((9, 5), 2), ((4, 11), 4), ((6, 6), 1)])
def test_low_rank_factors_eckart_young(shape: tuple[int, int], r: int) -> None:
    W = torch.randn(*shape, dtype=torch.float64)
    B, A = low_rank_factors(W, r)
    S = torch.linalg.svdvals(W)
    assert torch.linalg.matrix_rank(B @ A) == r
    torch.testing.assert_close(torch.linalg.norm(W - B @ A) ** 2, S[r:].pow(2).sum(), atol=1e-12, rtol=0)
    if r < min(shape):
        torch.testing.assert_close(torch.linalg.matrix_norm(W - B @ A, ord=2), S[r], atol=1e-12, rtol=0)
    for _ in range(20):  # any other rank-r matrix is further away
        other = torch.randn(shape[0], r, dtype=torch.float64) @ torch.randn(r, shape[1], dtype=torch.float64)
        assert torch.linalg.norm(W - other) > torch.linalg.norm(W - B @ A)
    with pytest.raises(ValueError, match=rf"\[1, {min(shape)}\], got r=0"):
        low_rank_factors(W, 0)
