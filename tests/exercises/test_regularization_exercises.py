"""Checkers of the chapter 8 exercises: a correct answer passes, a wrong or missing one fails."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dlscratch.exercises import core, grade
from dlscratch.exercises.regularization import ADAMW_LR, ADAMW_STEPS, ADAMW_WEIGHT_DECAY


@pytest.fixture(autouse=True)
def _only_regularization(monkeypatch: pytest.MonkeyPatch) -> None:
    # load only this topic's checkers, so these tests do not depend on other chapters' modules
    monkeypatch.setattr(core, "_TOPICS", ("regularization",))


# ---- reg.smooth_targets
def smooth_solution(target: torch.Tensor, n_classes: int, eps: float) -> torch.Tensor:
    return (1 - eps) * F.one_hot(target, n_classes).float() + eps / n_classes


def smooth_other_classes_only(target, n_classes, eps):
    q = torch.full((len(target), n_classes), eps / (n_classes - 1))
    q[torch.arange(len(target)), target] = 1 - eps
    return q


def smooth_not_normalised(target, n_classes, eps):
    return F.one_hot(target, n_classes).float() + eps / n_classes


# ---- reg.shift_right
def shift_solution(x: torch.Tensor, k: int) -> torch.Tensor:
    out = torch.zeros_like(x)
    out[..., k:] = x[..., : x.shape[-1] - k]
    return out


def shift_wraps(x, k):
    return torch.roll(x, k, dims=-1)


def shift_left(x, k):
    out = torch.zeros_like(x)
    out[..., : x.shape[-1] - k] = x[..., k:]
    return out


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


def test_smooth_solution_reproduces_torch_label_smoothing() -> None:
    logits, target = torch.randn(7, 5), torch.randint(0, 5, (7,))
    torch.testing.assert_close(
        F.cross_entropy(logits, smooth_solution(target, 5, 0.2)), F.cross_entropy(logits, target, label_smoothing=0.2)
    )


@pytest.mark.parametrize(
    ("name", "answer", "correct", "hint"),
    [
        ("reg.smooth_targets", smooth_solution, True, ""),
        ("reg.smooth_targets", smooth_other_classes_only, False, "K - 1"),
        ("reg.smooth_targets", smooth_not_normalised, False, "sum to 1"),
        ("reg.smooth_targets", lambda t, k, e: F.one_hot(t, k), False, "eps"),
        ("reg.smooth_targets", ..., None, ""),
        ("reg.adamw_decay_factor", (1 - ADAMW_LR * ADAMW_WEIGHT_DECAY) ** ADAMW_STEPS, True, ""),
        ("reg.adamw_decay_factor", 1 - ADAMW_LR * ADAMW_WEIGHT_DECAY, False, "one step"),
        ("reg.adamw_decay_factor", 1 - ADAMW_STEPS * ADAMW_LR * ADAMW_WEIGHT_DECAY, False, "compounds"),
        ("reg.adamw_decay_factor", (1 - ADAMW_WEIGHT_DECAY) ** ADAMW_STEPS, False, "learning rate"),
        ("reg.adamw_decay_factor", 0.5, False, "zero gradient"),
        ("reg.adamw_decay_factor", "0.9", False, "number"),
        ("reg.shift_right", shift_solution, True, ""),
        ("reg.shift_right", shift_wraps, False, "wrap"),
        ("reg.shift_right", shift_left, False, "left"),
        ("reg.early_stopping", early_solution, True, ""),
        ("reg.early_stopping", early_one_based, False, "from 0"),
        ("reg.early_stopping", early_never_stops, False, "patience"),
    ],
)
def test_checker_verdicts(name: str, answer, correct: bool | None, hint: str) -> None:
    verdict = grade(name, answer)
    assert verdict.correct is correct, verdict.message
    assert hint in verdict.message
