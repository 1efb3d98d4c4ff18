r"""A compact supervised training loop for classifiers, with evaluation and early stopping.

Works for any ``nn.Module`` that maps a batch ``(B, ...)`` to logits ``(B, K)``: the MLP of
chapter 6, the regularised runs of chapter 8 and the CNNs of chapter 9 all train through
:func:`fit_classifier`, a thin layer over the book's one loop,
:func:`~dlscratch.training.loop.train`. Everything random in the batches (their order, the
``transform`` used for data augmentation) draws from one explicit :class:`torch.Generator`;
dropout draws from torch's global generator, so seed it too
(:func:`dlscratch.utils.seed_everything`) for a run that repeats exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers.losses import cross_entropy
from .callbacks import Evaluate
from .loop import train
from .state import TrainState

__all__ = ["History", "accuracy", "confusion_matrix", "predict", "evaluate_classifier", "epoch_batches", "fit_classifier"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class History:
    r"""What :func:`fit_classifier` measured, one entry per epoch run."""

    train_loss: list[float] = field(default_factory=list)  # mean training loss over the epoch's batches
    val_loss: list[float] = field(default_factory=list)  # validation loss after the epoch (eval mode)
    val_acc: list[float] = field(default_factory=list)  # validation accuracy after the epoch
    best_epoch: int = -1  # 0-based epoch with the best monitored value
    stopped_early: bool = False  # whether patience ran out before the last epoch

    @property
    def epochs_run(self) -> int:
        r"""How many epochs were trained."""
        return len(self.train_loss)


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    r"""Fraction of examples whose arg-max logit is the target class.

    .. math:: \operatorname{acc} = \frac{1}{N}\sum_{n=1}^{N} \mathbb{1}\bigl[\arg\max_k z_{nk} = y_n\bigr]

    Accepts predicted class ids ``(N,)`` in place of logits.

    Shape:
        - logits: :math:`(N, K)` or :math:`(N,)`
        - target: :math:`(N,)`
    """
    pred = logits.argmax(dim=-1) if logits.dim() == 2 else logits  # (N,)
    if pred.shape != target.shape or pred.numel() == 0:
        raise ValueError(f"need {tuple(target.shape)} non-empty predictions to match the targets, got {tuple(logits.shape)}")
    return (pred == target.to(pred.device)).double().mean().item()


def confusion_matrix(target: torch.Tensor, pred: torch.Tensor, n_classes: int) -> torch.Tensor:
    r"""Count matrix :math:`C_{ij}` = number of examples of true class :math:`i` predicted as :math:`j`.

    Rows are true classes, columns predictions (the convention of scikit-learn); the diagonal
    holds the correct predictions, so ``C.trace() / C.sum()`` is the accuracy.

    Shape:
        - target, pred: :math:`(N,)` integer class ids in ``[0, n_classes)``
        - output: :math:`(K, K)` ``int64`` on the CPU
    """
    target, pred = target.reshape(-1).cpu().long(), pred.reshape(-1).cpu().long()
    if target.shape != pred.shape:
        raise ValueError(f"target and pred must have the same length, got {target.numel()} and {pred.numel()}")
    for name, t in (("target", target), ("pred", pred)):
        if t.numel() and (t.min() < 0 or t.max() >= n_classes):
            raise ValueError(f"{name} ids must lie in [0, {n_classes}), got min {t.min().item()} and max {t.max().item()}")
    flat = target * n_classes + pred  # (N,) index of the cell (true, pred)
    return torch.bincount(flat, minlength=n_classes * n_classes).view(n_classes, n_classes)  # (K, K)


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    r"""Logits of ``model`` on ``x`` in evaluation mode and ``inference_mode``, in chunks.

    The model's mode (training or evaluation) is restored afterwards. Inputs are moved to the
    model's device.

    Shape:
        - x: :math:`(N, \ldots)`
        - output: :math:`(N, K)`
    """
    was_training = model.training
    model.eval()
    dev = _model_device(model)
    try:
        with torch.inference_mode():
            return torch.cat([model(x[i : i + batch_size].to(dev)) for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)


def evaluate_classifier(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn = cross_entropy, batch_size: int = 4096
) -> tuple[float, float]:
    r"""Mean loss and accuracy of ``model`` on a whole split (see :func:`predict`).

    Returns:
        ``(loss, accuracy)`` as Python floats.
    """
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"need a non-empty split with as many labels as inputs, got {x.shape[0]} inputs and {y.shape[0]} labels")
    logits = predict(model, x, batch_size)  # (N, K)
    y = y.to(logits.device)
    with torch.inference_mode():
        loss = loss_fn(logits, y).item()
    return loss, accuracy(logits, y)


def epoch_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int, generator: torch.Generator, transform: Transform | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    r"""``epochs`` passes over ``(x, y)`` in mini-batches, each pass in a fresh order from ``generator``.

    ``transform(x_batch, generator)`` (data augmentation) is applied to every batch. The last
    batch of an epoch may be smaller.
    """
    N = x.shape[0]
    for _ in range(epochs):
        order = torch.randperm(N, generator=generator).to(x.device)  # (N,) this epoch's shuffle
        for start in range(0, N, batch_size):
            idx = order[start : start + batch_size]  # (b,)
            xb = x[idx] if transform is None else transform(x[idx], generator)
            yield xb, y[idx]


def _check_fit(x: torch.Tensor, y: torch.Tensor, epochs: int, batch_size: int, patience: int | None, monitor: str, interval: str) -> None:
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x_train has {x.shape[0]} examples and y_train {y.shape[0]}; need equal and non-zero")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got epochs={epochs}, batch_size={batch_size}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be a positive int or None, got {patience}")
    if monitor not in ("val_loss", "val_acc"):
        raise ValueError(f"monitor must be 'val_loss' or 'val_acc', got {monitor!r}")
    if interval not in ("epoch", "batch"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'batch', got {interval!r}")


def _epoch_means(losses: list[float], N: int, batch_size: int) -> list[float]:
    sizes = [min(batch_size, N - s) for s in range(0, N, batch_size)]  # the batches of one epoch
    out = []
    for e in range(0, len(losses), len(sizes)):
        chunk = losses[e : e + len(sizes)]
        out.append(sum(v * n for v, n in zip(chunk, sizes)) / sum(sizes[: len(chunk)]))
    return out


def fit_classifier(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    loss_fn: LossFn = cross_entropy,
    val_loss_fn: LossFn = cross_entropy,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "epoch",
    patience: int | None = None,
    monitor: str = "val_loss",
    restore_best: bool = True,
    transform: Transform | None = None,
) -> History:
    r"""Train a classifier with :func:`~dlscratch.training.loop.train`, validating after every epoch.

    The batches come from :func:`epoch_batches`; the objective is ``loss_fn(model(x), y)``.
    After each epoch an :class:`~dlscratch.training.callbacks.Evaluate` scores the validation
    split with :func:`evaluate_classifier` (on ``val_loss_fn``, plain cross-entropy by default,
    so that runs trained with other objectives compare on one scale), steps an epoch-wise
    ``scheduler`` (a ``"batch"`` one steps after every update), remembers the best epoch
    (lowest ``"val_loss"`` or highest ``"val_acc"``, ties keep the earlier), stops after
    ``patience`` epochs without a strict improvement, and with ``restore_best`` ends with the
    best epoch's weights and buffers. Everything random in the batches draws from
    ``generator``; dropout draws from torch's global generator, so seed it too.

    Returns:
        The :class:`History` of the run.

    Raises:
        ValueError: on mismatched or empty splits or an invalid setting.
    """
    _check_fit(x_train, y_train, epochs, batch_size, patience, monitor, scheduler_interval)
    dev = _model_device(model)
    x_train, y_train = x_train.to(dev), y_train.to(dev)
    per_epoch = math.ceil(x_train.shape[0] / batch_size)

    def validate(m: nn.Module) -> dict[str, float]:
        return dict(zip(("val_loss", "val_acc"), evaluate_classifier(m, x_val, y_val, val_loss_fn)))

    def end_of_epoch(state: TrainState, metrics: dict[str, float]) -> None:
        if scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()

    mode = "min" if monitor == "val_loss" else "max"
    val = Evaluate(per_epoch, validate, monitor, mode, patience, keep_best=restore_best, on_eval=end_of_epoch)
    state = train(
        model, epoch_batches(x_train, y_train, batch_size, epochs, generator, transform), optimizer,
        scheduler if scheduler_interval == "batch" else None, steps=epochs * per_epoch,
        loss_fn=lambda m, b: loss_fn(m(b[0]), b[1]), callbacks=[val], progress=False,
    )
    train_loss = _epoch_means(state.train_loss, x_train.shape[0], batch_size)
    return History(train_loss, val.values("val_loss"), val.values("val_acc"), val.best, val.stopped_early)


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")
