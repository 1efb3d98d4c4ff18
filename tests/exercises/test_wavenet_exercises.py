"""Checkers of the chapter 5 exercises: a correct answer passes, wrong ones fail with a specific hint."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import core, grade
from dlscratch.layers.mini_nn import FlattenConsecutive
from dlscratch.models import MLPLMConfig, WaveNet, WaveNetConfig

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_this_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_TOPICS", ("wavenet",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- wavenet.conv_weight
def conv_weight(W: torch.Tensor, C: int) -> torch.Tensor:
    H = W.shape[1]
    return W.T.reshape(H, 2, C).transpose(1, 2)  # (H, 2C) -> (H, tap, C) -> (H, C, tap)


def conv_weight_interleaved(W: torch.Tensor, C: int) -> torch.Tensor:
    return W.T.reshape(W.shape[1], C, 2)


def conv_weight_flipped(W: torch.Tensor, C: int) -> torch.Tensor:
    return conv_weight(W, C).flip(-1)


def test_conv_weight() -> None:
    wrongs = [lambda: conv_weight_interleaved, lambda: conv_weight_flipped, lambda: lambda W, C: W, lambda: 2]
    assert_grades("wavenet.conv_weight", lambda: conv_weight, wrongs)
    _wrong("wavenet.conv_weight", conv_weight_interleaved, "reshape W.T to (H, 2, C) first")
    _wrong("wavenet.conv_weight", conv_weight_flipped, "taps are swapped")
    _wrong("wavenet.conv_weight", lambda W, C: W, "(out_channels, in_channels, kernel_size)")
    _wrong("wavenet.conv_weight", lambda W, C: torch.zeros(W.shape[1], C, 2, dtype=W.dtype), "tap k, channel c")
    # independently: a level is a stride-2 convolution
    h, W = torch.randn(2, 8, 3, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    conv = F.conv1d(h.transpose(1, 2), conv_weight(W, 3), stride=2).transpose(1, 2)
    torch.testing.assert_close(conv, FlattenConsecutive(2)(h) @ W)


# ---- wavenet.gradient_leak: the measurement the exercise asks for
def measured_positions(training: bool) -> tuple[int, ...]:
    from dlscratch.data import build_examples, names_split

    torch.manual_seed(3)
    model = WaveNet(WaveNetConfig())
    model.train(training)
    X, _ = build_examples(names_split().val, 8)
    outs = model.layers.outputs(X[:32])
    outs[0].retain_grad()
    level2 = outs[12]  # the second Tanh: (32, 2, H)
    assert level2.shape[1] == 2
    level2[0, 1].sum().backward()
    return tuple((outs[0].grad[0].abs().sum(-1) > 0).nonzero().flatten().tolist())


def test_gradient_leak() -> None:
    right = {"train": measured_positions(True), "eval": measured_positions(False)}
    assert right == {"train": tuple(range(8)), "eval": (4, 5, 6, 7)}
    receptive = {"train": (4, 5, 6, 7), "eval": (4, 5, 6, 7)}
    assert_grades("wavenet.gradient_leak", lambda: right, [lambda: receptive, lambda: (4, 5, 6, 7)])
    _wrong("wavenet.gradient_leak", receptive, "batch norm computes its mean and variance over the batch and the positions")
    _wrong("wavenet.gradient_leak", {**right, "eval": (2, 3)}, "eq. (receptive)")
    _wrong("wavenet.gradient_leak", {**right, "eval": 7}, "tuple of ints")
    _wrong("wavenet.gradient_leak", (4, 5, 6, 7), "give a dict")


# ---- wavenet.param_crossover
def crossover() -> int:
    T = 2
    while MLPLMConfig(block_size=T, n_embd=24, n_hidden=128).num_params <= WaveNetConfig(block_size=T).num_params:
        T *= 2
    return T


def test_param_crossover() -> None:
    assert crossover() == 64
    assert_grades("wavenet.param_crossover", crossover, [lambda: 32, lambda: 128, lambda: 50, lambda: "64"])
    _wrong("wavenet.param_crossover", 8, "still the smaller one")
    _wrong("wavenet.param_crossover", 128, "overtakes before 128")
    _wrong("wavenet.param_crossover", 50, "a power of 2")
