r"""Exercise checkers for chapter 8, "Regularization".

Every checker recomputes the answer independently (by indexing, with ``torch.optim.AdamW``,
``torch.roll`` or a direct simulation) and raises :class:`AssertionError` with a hint when the
reader's answer differs. The reference solutions live in the tests, not here and not on the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .core import exercise

__all__ = [
    "ADAMW_LR",
    "ADAMW_WEIGHT_DECAY",
    "ADAMW_STEPS",
    "check_smooth_targets",
    "check_adamw_decay_factor",
    "check_shift_right",
    "check_early_stopping",
]

# reg.adamw_decay_factor: AdamW with these settings runs ADAMW_STEPS steps with zero gradients
ADAMW_LR = 0.01
ADAMW_WEIGHT_DECAY = 0.1
ADAMW_STEPS = 100


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    if not callable(fn):
        raise AssertionError(f"pass your function itself, not {fn!r}.")
    return fn(*args)


@exercise("reg.smooth_targets")
def check_smooth_targets(answer: Any) -> None:
    r"""``smooth_targets(target, n_classes, eps)`` → the ``(N, K)`` label-smoothed target distributions."""
    gen = torch.Generator().manual_seed(0)
    for N, K, eps in [(6, 4, 0.1), (1, 10, 0.3), (5, 2, 0.0), (3, 5, 1.0)]:
        target = torch.randint(0, K, (N,), generator=gen)
        got = _call(answer, target.clone(), K, eps)
        if not isinstance(got, torch.Tensor) or got.shape != (N, K):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise AssertionError(f"return an ({N}, {K}) tensor of probabilities, got {shape}.")
        got = got.to(torch.float64)
        want = torch.full((N, K), eps / K, dtype=torch.float64)
        want[torch.arange(N), target] += 1.0 - eps
        if torch.allclose(got, want, atol=1e-8):
            continue
        if not torch.allclose(got.sum(-1), torch.ones(N, dtype=torch.float64), atol=1e-8):
            raise AssertionError("each row must sum to 1: it is a probability distribution over the K classes.")
        if K > 1 and eps > 0:
            other = torch.full((N, K), eps / (K - 1), dtype=torch.float64)
            other[torch.arange(N), target] = 1 - eps
            if torch.allclose(got, other, atol=1e-8):
                raise AssertionError(
                    "that spreads eps over the K - 1 wrong classes only; the mixture with the uniform distribution "
                    "gives every class eps / K, the true class included."
                )
        raise AssertionError(f"wrong distribution for eps={eps}, K={K}: use q = (1 - eps) * onehot(y) + eps / K.")


@exercise("reg.adamw_decay_factor")
def check_adamw_decay_factor(answer: Any) -> None:
    r"""The factor by which ``ADAMW_STEPS`` AdamW steps with zero gradients shrink a weight."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise AssertionError(f"give the factor as a Python number, not {answer!r}.")
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


@exercise("reg.shift_right")
def check_shift_right(answer: Any) -> None:
    r"""``shift_right(x, k)``: move the content of ``(N, C, H, W)`` images ``k`` columns right, zeros enter on the left."""
    gen = torch.Generator().manual_seed(2)
    for shape, k in [((2, 1, 8, 8), 1), ((3, 2, 5, 6), 3), ((1, 1, 4, 4), 0), ((2, 1, 3, 5), 4)]:
        x = torch.rand(shape, generator=gen) + 0.1  # strictly positive, so zeros come only from the padding
        got = _call(answer, x.clone(), k)
        if not isinstance(got, torch.Tensor) or got.shape != x.shape:
            raise AssertionError(f"return a tensor of the input's shape {shape}.")
        want = torch.roll(x, k, dims=3)
        want[..., :k] = 0
        if torch.equal(got, want):
            continue
        if torch.equal(got, torch.roll(x, k, dims=3)):
            raise AssertionError("the columns that wrap around must become zeros, not reappear on the left.")
        left = torch.roll(x, -k, dims=3)
        if k:
            left[..., -k:] = 0
        if torch.equal(got, left):
            raise AssertionError("that moves the content left; column j of the output should hold column j - k of the input.")
        raise AssertionError(f"wrong result for shape {shape} and k={k}: out[..., j] = x[..., j - k] for j >= k, else 0.")


def _reference_early_stopping(losses: Sequence[float], patience: int) -> tuple[int, int]:
    best, best_epoch = float("inf"), -1
    for epoch, loss in enumerate(losses):
        if loss < best:
            best, best_epoch = loss, epoch
        elif epoch - best_epoch >= patience:
            return best_epoch, epoch + 1
    return best_epoch, len(losses)


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
        want = _reference_early_stopping(losses, patience)
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
