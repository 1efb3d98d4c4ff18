r"""A minimal, seeded minibatch training loop for the language models of Part II.

Each step draws ``batch_size`` random examples, computes the mean cross-entropy of the model's
logits, backpropagates and updates the parameters with SGD (with optional momentum) or Adam,
at a learning rate given by :func:`lr_at`. The loop is shared by chapter 4 (*MLP language
model*) and chapter 5 (*WaveNet*); it works with any ``logits_fn`` and any list of parameter
tensors, in particular with the plain :mod:`dlscratch.layers.mini_nn` layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..utils import progress_enabled

__all__ = ["SCHEDULES", "lr_at", "train_lm"]

SCHEDULES = ("constant", "step", "cosine")


def lr_at(step: int, steps: int, lr: float, schedule: str = "cosine", min_lr_ratio: float = 0.0, decay_at: float = 0.75) -> float:
    r"""The learning rate at ``step`` (0-based) of ``steps``.

    .. math::

        \eta_t =
        \begin{cases}
        \eta & \text{constant} \\
        \eta & \text{step, } t < \lfloor d\,S \rfloor; \quad r\eta \text{ afterwards} \\
        r\eta + (1 - r)\,\eta\,\tfrac{1}{2}\left(1 + \cos(\pi t / S)\right) & \text{cosine}
        \end{cases}

    with :math:`S` = ``steps``, :math:`r` = ``min_lr_ratio`` and :math:`d` = ``decay_at``.

    Args:
        step: the current step, ``0 <= step < steps``.
        steps: total number of steps.
        lr: the peak learning rate :math:`\eta`.
        schedule: ``"constant"``, ``"step"`` or ``"cosine"``.
        min_lr_ratio: final (cosine) or post-decay (step) rate as a fraction of ``lr``.
        decay_at: fraction of the run after which the ``"step"`` schedule decays.

    Returns:
        The learning rate.

    Raises:
        ValueError: on an unknown schedule.
    """
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr if step < int(decay_at * steps) else lr * min_lr_ratio
    if schedule == "cosine":
        return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * step / steps)))
    raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")


def train_lm(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    params: Sequence[torch.Tensor],
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    schedule: str = "step",
    min_lr_ratio: float = 0.1,
    decay_at: float = 0.75,
    seed: int = 0,
) -> list[float]:
    r"""Train ``params`` by minibatch gradient descent on the cross-entropy of ``logits_fn``.

    At each step, examples are drawn uniformly with replacement from ``(X, Y)`` by a generator
    seeded with ``seed`` on the device of ``X``, so a run is reproducible on a given device (CPU
    and CUDA draw different streams). The caller puts the model
    in training mode first (batch norm uses batch statistics) and in evaluation mode afterwards.

    Args:
        logits_fn: contexts ``(B, ...)`` → logits ``(B, V)``.
        params: the tensors to train (they must require gradients).
        X: training contexts ``(N, ...)``, on the model's device.
        Y: training targets ``(N,)``, on the model's device.
        steps: number of parameter updates.
        batch_size: examples per update.
        lr: peak learning rate.
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        momentum: SGD momentum (ignored by Adam).
        schedule: learning-rate schedule, see :func:`lr_at`.
        min_lr_ratio: see :func:`lr_at`.
        decay_at: see :func:`lr_at`.
        seed: seeds the minibatch sampling.

    Returns:
        The training loss of every step (on its own minibatch), in nats.

    Raises:
        ValueError: on non-positive ``steps``/``batch_size``/``lr``, an unknown optimizer or
            schedule, mismatched ``X``/``Y``, or parameters that do not require gradients.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("lr", lr)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} examples but Y has {Y.shape[0]}")
    params = list(params)
    if not all(p.requires_grad for p in params):
        raise ValueError("every parameter must require gradients (call p.requires_grad_())")
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected 'sgd' or 'adam'")

    gen = torch.Generator(device=X.device).manual_seed(seed)  # indices drawn where the data lives
    losses = torch.empty(steps, device=X.device)  # kept on the device: no sync per step
    bar = None
    if progress_enabled():
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="training", unit="step", mininterval=1.0)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, lr, schedule, min_lr_ratio, decay_at)
        ix = torch.randint(0, X.shape[0], (batch_size,), generator=gen, device=X.device)  # (B,)
        loss = F.cross_entropy(logits_fn(X[ix]), Y[ix])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step] = loss.detach()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return losses.tolist()
