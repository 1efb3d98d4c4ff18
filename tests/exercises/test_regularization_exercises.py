"""Checkers of the chapter 8 exercises: a correct answer passes, wrong ones fail with a specific hint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlscratch.data import shift_images
from dlscratch.exercises import core, grade
from dlscratch.exercises.regularization import ADAMW_LR, ADAMW_STEPS, ADAMW_WEIGHT_DECAY

from .grading import assert_grades


@pytest.fixture(autouse=True)
def _only_regularization(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("regularization",))


def _wrong(name: str, answer, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message


# ---- reg.ls_floor: the measurement, with torch's label smoothing at the logits of eq. (ls-gap)
def ls_floor_measured() -> float:
    eps, K = 0.1, 10
    z = torch.zeros(1, K, dtype=torch.float64)
    z[0, 3] = math.log((1 - eps + eps / K) / (eps / K))
    return F.cross_entropy(z, torch.tensor([3]), label_smoothing=eps).item()


def test_ls_floor() -> None:
    q = torch.tensor([0.91] + [0.01] * 9, dtype=torch.float64)
    assert ls_floor_measured() == pytest.approx(-(q * q.log()).sum().item(), rel=1e-9)  # the entropy of q
    assert_grades("reg.ls_floor", ls_floor_measured, [lambda: 0.0, lambda: math.log(10), lambda: 0.2])
    _wrong("reg.ls_floor", 0.0, "entropy of q")
    _wrong("reg.ls_floor", -math.log(0.91), "first term only")
    _wrong("reg.ls_floor", math.log(10), "uniform logits")
    _wrong("reg.ls_floor", 0.2, "measure it")


# ---- reg.adamw_decay_factor
def test_adamw_decay_factor() -> None:
    right = (1 - ADAMW_LR * ADAMW_WEIGHT_DECAY) ** ADAMW_STEPS
    assert_grades("reg.adamw_decay_factor", lambda: right, [lambda: 1 - ADAMW_LR * ADAMW_WEIGHT_DECAY, lambda: 0.5, lambda: "0.9"])
    _wrong("reg.adamw_decay_factor", 1 - ADAMW_LR * ADAMW_WEIGHT_DECAY, "one step")
    _wrong("reg.adamw_decay_factor", 1 - ADAMW_STEPS * ADAMW_LR * ADAMW_WEIGHT_DECAY, "compounds")
    _wrong("reg.adamw_decay_factor", (1 - ADAMW_WEIGHT_DECAY) ** ADAMW_STEPS, "learning rate")
    _wrong("reg.adamw_decay_factor", 0.5, "zero gradient")
    _wrong("reg.adamw_decay_factor", "0.9", "as a number")


# ---- reg.shift_kernel
def shift_kernel(dy: int, dx: int, k: int) -> torch.Tensor:
    kernel = torch.zeros(1, 1, 2 * k + 1, 2 * k + 1)
    kernel[0, 0, k - dy, k - dx] = 1.0  # output (i, j) reads input (i - dy, j - dx)
    return kernel


def shift_kernel_flipped(dy: int, dx: int, k: int) -> torch.Tensor:
    return shift_kernel(-dy, -dx, k)


def test_shift_kernel() -> None:
    wrongs = [lambda: shift_kernel_flipped, lambda: lambda dy, dx, k: torch.ones(1, 1, 2 * k + 1, 2 * k + 1), lambda: 1]
    assert_grades("reg.shift_kernel", lambda: shift_kernel, wrongs)
    _wrong("reg.shift_kernel", shift_kernel_flipped, "does not flip its kernel")
    _wrong("reg.shift_kernel", lambda dy, dx, k: torch.ones(1, 1, 2 * k + 1, 2 * k + 1), "a single 1")
    _wrong("reg.shift_kernel", lambda dy, dx, k: torch.zeros(1, 1, 2, 2), "(1, 1, 3, 3)")
    _wrong("reg.shift_kernel", lambda dy, dx, k: shift_kernel(dy, 0, k), "wrong place")
    x = torch.rand(2, 1, 6, 6)
    torch.testing.assert_close(F.conv2d(x, shift_kernel(1, -1, 1), padding=1), shift_images(x, torch.tensor([[1, -1], [1, -1]])))


# ---- reg.early_stopping
def early_solution(val_losses: list[float], patience: int) -> tuple[int, int]:
    best_epoch = 0
    for epoch in range(1, len(val_losses)):
        if val_losses[epoch] < val_losses[best_epoch]:
            best_epoch = epoch
        elif epoch - best_epoch >= patience:
            return best_epoch, epoch + 1
    return best_epoch, len(val_losses)


def early_one_based(val_losses, patience):
    best, run = early_solution(val_losses, patience)
    return best + 1, run


def early_never_stops(val_losses, patience):
    return min(range(len(val_losses)), key=val_losses.__getitem__), len(val_losses)


def test_early_stopping() -> None:
    assert_grades("reg.early_stopping", lambda: early_solution, [lambda: early_one_based, lambda: early_never_stops, lambda: 3])
    _wrong("reg.early_stopping", early_one_based, "from 0")
    _wrong("reg.early_stopping", early_never_stops, "patience")
    _wrong("reg.early_stopping", lambda v, p: [0, 1], "return a tuple")
