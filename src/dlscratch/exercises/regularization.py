r"""Exercise checkers for chapter 8, "Regularization" (topic prefix ``reg.``).

Every checker recomputes the answer with torch or the package's tested code (``torch.optim.AdamW``,
:func:`~dlscratch.data.shift_images`, :func:`~dlscratch.layers.cross_entropy`, the
:class:`~dlscratch.training.callbacks.Evaluate` callback of the training loop) and raises
:class:`AssertionError` with a hint when the reader's answer differs. The reference solutions
live in the tests, not here and not on the page.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..data.augment import shift_images
from ..layers.losses import cross_entropy
from ..training.callbacks import Evaluate
from ..training.loop import train
from .answers import require_callable, require_number
from .core import exercise

__all__ = [
    "ADAMW_LR",
    "ADAMW_WEIGHT_DECAY",
    "ADAMW_STEPS",
    "LS_EPS",
    "LS_CLASSES",
    "check_ls_floor",
    "check_adamw_decay_factor",
    "check_shift_kernel",
    "check_early_stopping",
    "ls_floor",
]

# reg.adamw_decay_factor: AdamW with these settings runs ADAMW_STEPS steps with zero gradients
ADAMW_LR = 0.01
ADAMW_WEIGHT_DECAY = 0.1
ADAMW_STEPS = 100
LS_EPS, LS_CLASSES = 0.1, 10  # reg.ls_floor: label smoothing and number of classes


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    if not callable(fn):
        raise AssertionError(f"pass your function itself, not {fn!r}.")
    return fn(*args)


def ls_floor(eps: float = LS_EPS, n_classes: int = LS_CLASSES) -> float:
    r"""The lowest value of the package's label-smoothed ``cross_entropy``: at the logits of eq. (ls-gap)."""
    gap = math.log((1 - eps + eps / n_classes) / (eps / n_classes))
    z = torch.zeros(1, n_classes, dtype=torch.float64)
    z[0, 0] = gap
    return cross_entropy(z, torch.tensor([0]), label_smoothing=eps).item()


@exercise("reg.ls_floor")
def check_ls_floor(answer: Any) -> None:
    r"""The smallest loss a label-smoothed cross-entropy (``eps = 0.1``, ten classes) can reach, for any logits."""
    got = require_number(answer, "the lowest loss")
    want = ls_floor()
    if math.isclose(got, want, rel_tol=1e-3):
        return
    if abs(got) < 1e-3:
        raise AssertionError(
            "0 needs p = onehot(y), but the target is q now: the loss -sum q log p is smallest at p = q, "
            "and there it is the entropy of q, not 0."
        )
    if math.isclose(got, -math.log(1 - LS_EPS + LS_EPS / LS_CLASSES), rel_tol=1e-3):
        raise AssertionError("that is -log q_y, the first term only; the wrong classes carry eps / K of the target each, and cost -log(eps / K).")
    if math.isclose(got, math.log(LS_CLASSES), rel_tol=1e-3):
        raise AssertionError("log K is the loss of uniform logits, not the lowest one.")
    raise AssertionError(
        "measure it: put the logit gap of eq. (ls-gap) on the true class (all other logits 0) and evaluate "
        "cross_entropy(z, y, label_smoothing=0.1); or compute -sum_k q_k log q_k."
    )


def _shift_cases() -> list[tuple[int, int, int]]:
    return [(1, 0, 1), (0, -1, 1), (1, 1, 1), (-2, 1, 2), (0, 0, 1), (2, -2, 3)]


@exercise("reg.shift_kernel")
def check_shift_kernel(answer: Any) -> None:
    r"""``answer(dy, dx, k)`` returns a ``(1, 1, 2k+1, 2k+1)`` kernel with ``F.conv2d(x, kernel, padding=k)`` equal to
    the package's :func:`~dlscratch.data.shift_images` by ``(dy, dx)``, for ``|dy|, |dx| <= k``."""
    fn = require_callable(answer, "shift_kernel")
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 1, 8, 8, generator=gen, dtype=torch.float64) + 0.1  # positive: zeros come only from the border
    for dy, dx, k in _shift_cases():
        kernel = fn(dy, dx, k)
        if not isinstance(kernel, torch.Tensor) or tuple(kernel.shape) != (1, 1, 2 * k + 1, 2 * k + 1):
            shape = tuple(kernel.shape) if isinstance(kernel, torch.Tensor) else type(kernel).__name__
            raise AssertionError(f"for k = {k} return a (1, 1, {2 * k + 1}, {2 * k + 1}) kernel, got {shape}.")
        got = F.conv2d(x, kernel.to(torch.float64), padding=k)
        want = shift_images(x, torch.tensor([[dy, dx]]).repeat(3, 1))
        if torch.allclose(got, want, atol=1e-12):
            continue
        flipped = shift_images(x, torch.tensor([[-dy, -dx]]).repeat(3, 1))
        if torch.allclose(got, flipped, atol=1e-12):
            raise AssertionError(
                f"(dy, dx) = ({dy}, {dx}): the content moved the other way. F.conv2d does not flip its kernel: "
                "output (i, j) reads input (i + a - k, j + b - k) through kernel entry (a, b)."
            )
        if kernel.sum().item() != 1:
            raise AssertionError("a shift copies one pixel: the kernel has a single 1 and zeros elsewhere.")
        raise AssertionError(f"(dy, dx) = ({dy}, {dx}), k = {k}: the 1 is in the wrong place.")


@exercise("reg.adamw_decay_factor")
def check_adamw_decay_factor(answer: Any) -> None:
    r"""The factor by which ``ADAMW_STEPS`` AdamW steps with zero gradients shrink a weight."""
    answer = require_number(answer, "the factor")
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    opt = torch.optim.AdamW([w], lr=ADAMW_LR, weight_decay=ADAMW_WEIGHT_DECAY)
    for _ in range(ADAMW_STEPS):
        w.grad = torch.zeros_like(w)
        opt.step()
    want = (w.detach() / torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))[0].item()
    if abs(answer - want) < 1e-6:
        return
    one_step = 1 - ADAMW_LR * ADAMW_WEIGHT_DECAY
    if abs(answer - one_step) < 1e-9:
        raise AssertionError(f"that is the factor of one step; the weight goes through {ADAMW_STEPS} of them.")
    if abs(answer - (1 - ADAMW_STEPS * ADAMW_LR * ADAMW_WEIGHT_DECAY)) < 1e-9:
        raise AssertionError("close, but the decay compounds: each step multiplies what the previous one left.")
    if abs(answer - (1 - ADAMW_WEIGHT_DECAY) ** ADAMW_STEPS) < 1e-9:
        raise AssertionError("the decoupled decay is scaled by the learning rate as well: w <- w - lr * lambda * w.")
    raise AssertionError("with a zero gradient Adam's own step is 0, so only the decoupled decay acts; see eq. (adamw).")


def _package_early_stopping(losses: Sequence[float], patience: int) -> tuple[int, int]:
    """(best_epoch, epochs_run) of the package's ``Evaluate`` callback fed ``losses``, one per epoch."""
    scripted = iter(losses)
    evaluate = Evaluate(1, lambda model: {"val_loss": next(scripted)}, "val_loss", "min", patience)
    model = torch.nn.Linear(1, 1)
    train(
        model, itertools.repeat(0), torch.optim.SGD(model.parameters(), lr=0.0), steps=len(losses),
        loss_fn=lambda m, batch: m.weight.sum() * 0, callbacks=[evaluate], progress=False,
    )
    return evaluate.best, len(evaluate.results)


@exercise("reg.early_stopping")
def check_early_stopping(answer: Any) -> None:
    r"""``early_stopping(val_losses, patience)`` → ``(best_epoch, epochs_run)``, the rule of ``fit_classifier``."""
    cases = [
        ([1.0, 0.8, 0.9, 0.85, 0.95, 0.7], 2),
        ([1.0, 0.8, 0.9, 0.85, 0.95, 0.7], 3),
        ([0.5, 0.5, 0.5, 0.5], 2),
        ([3.0, 2.0, 1.0], 1),
        ([0.9, 1.0, 1.1, 1.2, 0.1], 3),
        ([2.0], 5),
    ]
    for losses, patience in cases:
        want = _package_early_stopping(losses, patience)
        got = _call(answer, list(losses), patience)
        if not isinstance(got, tuple) or len(got) != 2:
            raise AssertionError(f"return a tuple (best_epoch, epochs_run), got {got!r}.")
        if tuple(int(v) for v in got) == want:
            continue
        if got[0] == want[0] + 1 and got[1] == want[1]:
            raise AssertionError("count epochs from 0: the first validation loss belongs to epoch 0.")
        raise AssertionError(
            f"for val_losses={losses} and patience={patience} you returned {got}. Only a strictly lower loss counts as "
            "an improvement; stop after the epoch at which `patience` epochs have passed since the best one."
        )
