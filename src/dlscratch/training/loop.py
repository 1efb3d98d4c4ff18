r"""The book's one training loop, :func:`train`, and its state.

Every chapter that trains a model goes through :func:`train`: the language models of Part II
(:func:`train_lm`), the classifiers of chapters 6, 8 and 9
(:func:`~dlscratch.training.classify.fit_classifier`) and the GPT of chapter 17
(:func:`~dlscratch.training.lm.train_sequence_lm`). One step is

.. math::

    \eta_s = \eta_0 \, f(s), \qquad
    \theta \leftarrow \operatorname{update}\bigl(\theta, \nabla_\theta \, \ell(\text{model}, \text{batch}_s)\bigr)

with the schedule :math:`f` of :mod:`dlscratch.optimizers.schedules`. What differs between
chapters is an option (clipping, gradient accumulation, autocast) or a
:class:`~dlscratch.training.callbacks.Callback` (evaluation, early stopping, checkpoints,
progress bar), never a copy of the loop. Introduced in chapter 4, *MLP language model*.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..optimizers.schedules import constant, lr_lambda, step_decay, warmup_cosine
from ..utils import progress_enabled
from .callbacks import ProgressBar
from .estimate import CountingMode, RunEstimate, meter_path, record_estimate, should_announce
from .mechanics import DynamicLossScaler, accumulate_gradients, clip_grad_norm
from .state import TrainState, synchronize

__all__ = ["Schedule", "train", "trainable_parameters", "random_examples", "part2_schedule", "train_lm"]

Schedule = Callable[[int], float] | torch.optim.lr_scheduler.LRScheduler | None
LossFn = Callable[[Any, Any], torch.Tensor]


def trainable_parameters(model: Any) -> list[torch.Tensor]:
    r"""The tensors of ``model.parameters()`` that require gradients (frozen ones are left out)."""
    return [p for p in model.parameters() if p.requires_grad]


def next_token_loss(model: Callable[[torch.Tensor], torch.Tensor], batch: Sequence[torch.Tensor]) -> torch.Tensor:
    r"""The default objective: mean cross-entropy of ``model(x)`` ``(B, V)`` against ``y`` ``(B,)``."""
    x, y = batch
    return F.cross_entropy(model(x), y)


def _set_lr(optimizer: torch.optim.Optimizer, schedule: Schedule, step: int) -> float:
    if callable(schedule):  # a multiplier of each group's base rate, as LambdaLR
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * schedule(step)
    return optimizer.param_groups[0].get("lr", float("nan"))  # an optimizer may have no rate


def train(
    model: Any,
    batches: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    schedule: Schedule = None,
    *,
    steps: int,
    loss_fn: LossFn = next_token_loss,
    params: Iterable[torch.Tensor] | None = None,
    start_step: int = 0,
    grad_clip: float = 0.0,
    accumulate: int = 1,
    autocast: torch.dtype | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    announce: bool = True,
) -> TrainState:
    r"""Train ``model`` on ``batches`` for updates ``start_step .. steps - 1``.

    Each update: set the learning rate from ``schedule``, take the next batch, compute
    ``loss_fn(model, batch)`` (under ``torch.autocast`` when ``autocast`` is a dtype; in
    ``accumulate`` micro-batches with
    :func:`~dlscratch.training.mechanics.accumulate_gradients`), back-propagate, clip the global
    gradient norm to ``grad_clip`` (if > 0), step the optimizer, then call each callback's
    ``on_step(state)``. The run ends after update ``steps - 1``, when ``batches`` runs out or
    when a callback sets ``state.stop``; then every ``on_end(state)`` is called.

    Args:
        model: anything callable with ``parameters()``: an ``nn.Module`` or a
            :mod:`~dlscratch.layers.mini_nn` model. Put in ``train()`` mode if it has one.
        batches: an iterable of batches, each passed to ``loss_fn`` as is.
        optimizer: a torch optimizer (ours are too) over ``params``.
        schedule: ``step -> multiplier`` of each group's base rate (see
            :mod:`~dlscratch.optimizers.schedules`), a torch ``LRScheduler`` stepped after
            every update, or ``None`` (the optimizer's rate).
        steps: the total number of updates of the run (counting those before ``start_step``).
        loss_fn: ``loss_fn(model, batch)`` → scalar loss; default cross-entropy of ``model(x)``
            against ``y`` for ``batch = (x, y)``.
        params: the trained tensors, for clipping (default: the model's that require gradients).
        start_step: updates already done (resuming); the schedule continues from it.
        grad_clip: global gradient-norm threshold, 0 for none.
        accumulate: micro-batches per update; ``batch`` must then be a tuple of tensors.
        autocast: e.g. ``torch.bfloat16`` for mixed precision, ``None`` for full precision
            (:func:`~dlscratch.utils.mixed_precision_dtype` picks the device's). With
            ``torch.float16`` the loss is scaled (:class:`~dlscratch.training.mechanics.DynamicLossScaler`):
            gradients are unscaled before clipping, and an update whose gradients overflow is skipped.
        callbacks: objects with ``on_step(state)`` and ``on_end(state)``
            (:class:`~dlscratch.training.callbacks.Callback`).
        progress: draw a progress bar when :func:`~dlscratch.utils.progress_enabled`.
        announce: in a notebook, print before the run its preset, the FLOPs and operators of its
            first update (counted) and the time a Colab T4 would take
            (:mod:`~dlscratch.training.estimate`); once per cell, for the cell's first run.
            With ``DLSCRATCH_T4_METER`` set, the run instead records that estimate and stops
            after its first update (:func:`~dlscratch.training.estimate.meter_path`).

    Returns:
        The final :class:`TrainState`.
    """
    params = trainable_parameters(model) if params is None else list(params)
    if not params or not all(p.requires_grad for p in params):
        raise ValueError("need at least one parameter, and every parameter must require gradients")
    if not 0 <= start_step <= steps or accumulate < 1 or grad_clip < 0:
        raise ValueError(f"need 0 <= start_step <= steps, accumulate >= 1, grad_clip >= 0; got {start_step=}, {steps=}, {accumulate=}, {grad_clip=}")
    if callable(schedule):
        lr_lambda(schedule)  # fails now on a bad setting, not at some later step
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])  # the base rate, saved with the optimizer's state
    state = TrainState(model, optimizer, start_step, steps, device=params[0].device)
    if progress and progress_enabled():
        callbacks = [*callbacks, ProgressBar()]
    if hasattr(model, "train"):
        model.train()

    def forward(batch: Any) -> torch.Tensor:
        with contextlib.nullcontext() if autocast is None else torch.autocast(state.device.type, dtype=autocast):
            return loss_fn(model, batch)

    synchronize(state.device)
    t0 = state.started = time.perf_counter()
    it = iter(batches)
    meter = meter_path()
    scaler = DynamicLossScaler() if autocast == torch.float16 else None  # float16 gradients underflow without it
    scaled = (lambda loss: loss) if scaler is None else scaler.scale_loss
    stepped = [p for group in optimizer.param_groups for p in group["params"]] if scaler is not None else []
    while state.step < steps and not state.stop:
        lr = _set_lr(optimizer, schedule, state.step)
        batch = next(it, None)
        if batch is None:
            break
        optimizer.zero_grad(set_to_none=True)
        first = state.step == start_step
        shown = first and announce and should_announce()
        counting = shown or (first and meter is not None)
        with CountingMode() if counting else contextlib.nullcontext() as count:
            if accumulate == 1:
                loss = forward(batch)
                scaled(loss).backward()
            else:
                loss = accumulate_gradients(lambda *micro: scaled(forward(micro)), batch, accumulate)
                loss = loss if scaler is None else loss / scaler.scale
        if counting:
            estimate = RunEstimate(steps - start_step, count.flops, count.ops, autocast is not None)
            if shown:
                print(estimate.line(state.device))
            if meter is not None:
                record_estimate(estimate, meter)
                state.stop = True  # metering: the first update is all that runs
        overflow = scaler is not None and scaler.unscale_(stepped)
        if not overflow:  # a float16 update whose gradients overflowed is skipped
            if grad_clip > 0:
                clip_grad_norm(params, grad_clip)
            optimizer.step()
        if scaler is not None:
            scaler.update(overflow)
        if isinstance(schedule, torch.optim.lr_scheduler.LRScheduler):
            schedule.step()
        state.losses.append(loss.detach())
        state.lrs.append(lr)
        state.step += 1
        for cb in callbacks:
            cb.on_step(state)
    for cb in callbacks:
        cb.on_end(state)
    synchronize(state.device)
    state.seconds = time.perf_counter() - t0
    return state


def random_examples(X: torch.Tensor, Y: torch.Tensor, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    r"""Endless minibatches of ``batch_size`` examples drawn uniformly with replacement.

    The indices come from a generator seeded with ``seed`` on the device of ``X``, so a run is
    reproducible on a given device (CPU and CUDA draw different streams).
    """
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} examples but Y has {Y.shape[0]}")
    gen = torch.Generator(device=X.device).manual_seed(seed)  # indices drawn where the data lives
    while True:
        ix = torch.randint(0, X.shape[0], (batch_size,), generator=gen, device=X.device)  # (B,)
        yield X[ix], Y[ix]


def part2_schedule(name: str, steps: int, min_lr_ratio: float = 0.1, decay_at: float = 0.75) -> Callable[[int], float]:
    r"""Part II's schedules by name, as multipliers from :mod:`~dlscratch.optimizers.schedules`.

    ``"constant"``; ``"step"``: :func:`~dlscratch.optimizers.step_decay` by ``min_lr_ratio``
    after ``int(decay_at * steps)`` updates; ``"cosine"``:
    :func:`~dlscratch.optimizers.warmup_cosine` without warm-up, from the peak on the first update
    to ``min_lr_ratio`` times it on the last.
    """
    if name == "constant":
        return constant
    if name == "step":
        return lr_lambda(step_decay, step_size=max(1, int(decay_at * steps)), gamma=min_lr_ratio)
    if name == "cosine":
        return lr_lambda(warmup_cosine, warmup_steps=1, total_steps=steps, min_ratio=min_lr_ratio)
    raise ValueError(f"unknown schedule {name!r}; expected 'constant', 'step' or 'cosine'")


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
    r"""Part II's recipe over :func:`train`: random minibatches, SGD or Adam, a named schedule.

    The caller puts the model in training mode first (batch norm uses batch statistics) and in
    evaluation mode afterwards.

    Args:
        logits_fn: contexts ``(B, ...)`` → logits ``(B, V)``.
        params: the tensors to train (they must require gradients).
        X, Y: training contexts ``(N, ...)`` and targets ``(N,)``, on the model's device.
        steps, batch_size, lr: updates, examples per update, peak learning rate.
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        momentum: SGD momentum (ignored by Adam).
        schedule, min_lr_ratio, decay_at: see :func:`part2_schedule`.
        seed: seeds the minibatch sampling (:func:`random_examples`).

    Returns:
        The training loss of every step (on its own minibatch), in nats.
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("lr", lr)):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    params = list(params)
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; expected 'sgd' or 'adam'")
    if not all(p.requires_grad for p in params):
        raise ValueError("every parameter must require gradients (call p.requires_grad_())")
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum) if optimizer == "sgd" else torch.optim.Adam(params, lr=lr)
    batches = random_examples(X, Y, batch_size, seed)
    state = train(logits_fn, batches, opt, part2_schedule(schedule, steps, min_lr_ratio, decay_at), steps=steps, params=params)
    return state.train_loss
