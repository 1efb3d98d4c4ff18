"""The shared training loop of Part II: schedules, reproducibility, errors, and that it learns."""

from __future__ import annotations

import math

import pytest
import torch

from dlscratch.layers.mini_nn import Embedding, FlattenConsecutive, Linear, Sequential, Tanh
from dlscratch.training import lr_at, train_lm


def test_schedules() -> None:
    assert lr_at(123, 1000, 0.5, "constant") == 0.5
    assert lr_at(749, 1000, 0.1, "step", min_lr_ratio=0.1) == 0.1
    assert lr_at(750, 1000, 0.1, "step", min_lr_ratio=0.1) == pytest.approx(0.01)
    assert lr_at(0, 1000, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(500, 1000, 0.1, "cosine", min_lr_ratio=0.2) == pytest.approx(0.1 * (0.2 + 0.8 * 0.5))
    assert lr_at(999, 1000, 0.1, "cosine") < 1e-5
    with pytest.raises(ValueError, match="'linear'"):
        lr_at(0, 10, 0.1, "linear")


def _task() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 5, (512, 2), generator=g)
    return X, (X[:, 0] + X[:, 1]) % 5  # learnable: next id is the sum mod 5


def _model(seed: int = 0) -> Sequential:
    torch.manual_seed(seed)  # mini_nn layers draw their weights from the global generator
    return Sequential([Embedding(5, 4), FlattenConsecutive(2), Linear(8, 32), Tanh(), Linear(32, 5)])


@pytest.mark.parametrize(("optimizer", "lr", "schedule"), [("sgd", 0.5, "step"), ("adam", 0.02, "cosine"), ("sgd", 0.3, "constant")])
def test_loss_goes_down(optimizer: str, lr: float, schedule: str) -> None:
    X, Y = _task()
    model = _model()
    hist = train_lm(model, model.parameters(), X, Y, steps=300, batch_size=64, lr=lr, optimizer=optimizer, momentum=0.9 if optimizer == "sgd" else 0.0, schedule=schedule)
    assert len(hist) == 300 and all(math.isfinite(v) for v in hist)
    assert sum(hist[-20:]) / 20 < 0.5 * sum(hist[:20]) / 20


def test_same_seed_same_run() -> None:
    X, Y = _task()
    runs = []
    for _ in range(2):
        model = _model()
        runs.append(train_lm(model, model.parameters(), X, Y, steps=20, batch_size=16, lr=0.1, seed=5))
    assert runs[0] == runs[1]
    model = _model()
    assert train_lm(model, model.parameters(), X, Y, steps=20, batch_size=16, lr=0.1, seed=6) != runs[0]


def test_bad_arguments() -> None:
    X, Y = _task()
    model = _model()
    with pytest.raises(ValueError, match="steps must be positive, got 0"):
        train_lm(model, model.parameters(), X, Y, steps=0, batch_size=4, lr=0.1)
    with pytest.raises(ValueError, match="'rmsprop'"):
        train_lm(model, model.parameters(), X, Y, steps=1, batch_size=4, lr=0.1, optimizer="rmsprop")
    with pytest.raises(ValueError, match="512 examples but Y has 3"):
        train_lm(model, model.parameters(), X, Y[:3], steps=1, batch_size=4, lr=0.1)
    with pytest.raises(ValueError, match="require gradients"):
        train_lm(model, [torch.zeros(3)], X, Y, steps=1, batch_size=4, lr=0.1)
