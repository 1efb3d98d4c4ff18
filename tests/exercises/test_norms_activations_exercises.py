"""Checkers of the chapter 20 exercises: a correct answer passes, wrong ones fail with a specific hint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlscratch.exercises import core, grade
from dlscratch.exercises.norms_activations import INIT_DIM, INIT_ROWS, INIT_STD, LLAMA_DIM
from dlscratch.layers import MLP, SwiGLU, swiglu_hidden


@pytest.fixture(autouse=True)
def _only_this_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("norms_activations",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- normact.rmsnorm_backward
def rms_backward(x, w, g, eps):
    r = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    u = g * w
    return u / r - x * (u * x).mean(-1, keepdim=True) / r**3


def rms_constant_r(x, w, g, eps):
    return g * w / (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()


def rms_no_weight(x, w, g, eps):
    return rms_backward(x, torch.ones_like(w), g, eps)


def layernorm_backward(x, w, g, eps):
    r = (x.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    xh, u = x / r, g * w
    return (u - u.mean(-1, keepdim=True) - xh * (u * xh).mean(-1, keepdim=True)) / r


def test_rmsnorm_backward() -> None:
    assert grade("normact.rmsnorm_backward", rms_backward).correct
    _wrong("normact.rmsnorm_backward", rms_constant_r, "treated the rms r as a constant")
    _wrong("normact.rmsnorm_backward", rms_no_weight, "through the gain")
    _wrong("normact.rmsnorm_backward", layernorm_backward, "LayerNorm's gradient")
    _wrong("normact.rmsnorm_backward", lambda x, w, g, eps: x, "wrong gradient for input shape")
    _wrong("normact.rmsnorm_backward", lambda x, w, g, eps: x[..., :1], "input's shape")
    _wrong("normact.rmsnorm_backward", 3, "pass your function")
    assert grade("normact.rmsnorm_backward", ...).correct is None


# ---- normact.swiglu_hidden
def test_swiglu_hidden() -> None:
    assert grade("normact.swiglu_hidden", 11008).correct and grade("normact.swiglu_hidden", torch.tensor(11008)).correct
    _wrong("normact.swiglu_hidden", 10922, "before rounding")
    _wrong("normact.swiglu_hidden", 4 * LLAMA_DIM, "4C is the width")
    _wrong("normact.swiglu_hidden", 10752, "round up")
    _wrong("normact.swiglu_hidden", 12000, "int(2 * 4C / 3)")
    _wrong("normact.swiglu_hidden", "11008", "as a number")


# ---- normact.init_ratio
def measured_ratio(seed: int) -> float:
    torch.manual_seed(seed)
    mlp = MLP(INIT_DIM, 4 * INIT_DIM, activation="gelu", bias=False)
    glu = SwiGLU(INIT_DIM, swiglu_hidden(INIT_DIM, 4))
    for p in [*mlp.parameters(), *glu.parameters()]:
        nn.init.normal_(p, std=INIT_STD)
    x = torch.randn(INIT_ROWS, INIT_DIM)
    with torch.no_grad():
        return (mlp(x).std() / glu(x).std()).item()


def test_init_ratio() -> None:
    for seed in (123, 4):  # any reader's own draw passes
        assert grade("normact.init_ratio", measured_ratio(seed)).correct
    _wrong("normact.init_ratio", 1 / measured_ratio(0), "above 1")
    _wrong("normact.init_ratio", 1.5, "measure it")


# ---- normact.invariances
def test_invariances() -> None:
    right = {"layernorm_shift": True, "layernorm_scale": True, "rmsnorm_shift": False, "rmsnorm_scale": True}
    assert grade("normact.invariances", right).correct
    _wrong("normact.invariances", {**right, "rmsnorm_shift": True}, "RMSNorm subtracts no mean")
    _wrong("normact.invariances", {**right, "layernorm_shift": False}, "subtracts the token's mean")
    _wrong("normact.invariances", {"layernorm_shift": True}, "exactly the keys")
    _wrong("normact.invariances", {**right, "rmsnorm_scale": 1}, "True (the output")
