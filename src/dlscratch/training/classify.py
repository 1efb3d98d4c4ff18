r"""A compact supervised training loop for classifiers, with evaluation and early stopping.

Works for any ``nn.Module`` that maps a batch ``(B, ...)`` to logits ``(B, K)``: the MLP of
chapter 6, the regularised runs of chapter 8 and the CNNs of chapter 9 all train through
:func:`fit_classifier`. Everything random in the loop (the order of the mini-batches, the
``transform`` used for data augmentation) draws from one explicit :class:`torch.Generator`;
dropout draws from torch's global generator, so seed it too
(:func:`dlscratch.utils.seed_everything`) for a run that repeats exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..layers.losses import cross_entropy

__all__ = ["History", "accuracy", "confusion_matrix", "predict", "evaluate_classifier", "fit_classifier"]

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


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    r"""Logits of ``model`` on ``x`` in evaluation mode and ``inference_mode``, in chunks.

    The model is left in evaluation mode. Inputs are moved to the model's device.

    Shape:
        - x: :math:`(N, \ldots)`
        - output: :math:`(N, K)`
    """
    model.eval()
    dev = _model_device(model)
    return torch.cat([model(x[i : i + batch_size].to(dev)) for i in range(0, x.shape[0], batch_size)])


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
    r"""Train ``model`` with mini-batches, validate after every epoch, optionally stop early.

    Each epoch shuffles the training set with ``generator``, and for each mini-batch applies
    ``transform`` (data augmentation, training batches only), computes ``loss_fn(model(x), y)``,
    back-propagates and steps ``optimizer`` (and ``scheduler`` when ``scheduler_interval`` is
    ``"batch"``). After the epoch it evaluates on the validation split with :func:`evaluate_classifier`
    (and steps an epoch-wise ``scheduler``).

    Early stopping: the epoch with the best ``monitor`` value (lowest ``"val_loss"`` or highest
    ``"val_acc"``; ties keep the earlier epoch) is remembered with a copy of its weights. When
    ``patience`` is set and ``patience`` epochs pass without a strict improvement, training
    stops. With ``restore_best`` the model ends with the best epoch's weights (and buffers,
    such as batch-norm statistics); otherwise with the last epoch's.

    Args:
        model: maps ``(B, ...)`` inputs to ``(B, K)`` logits; its device is used for everything.
        x_train, y_train: training inputs and integer labels.
        x_val, y_val: validation inputs and labels, for the history and early stopping.
        optimizer: built on ``model.parameters()``.
        epochs: the most epochs to run.
        batch_size: examples per step; the last batch of an epoch may be smaller.
        generator: CPU generator for the shuffling and for ``transform``.
        loss_fn: ``loss_fn(logits, target)`` → scalar, the training objective; the book's
            :func:`~dlscratch.layers.losses.cross_entropy` by default.
        val_loss_fn: the validation loss; plain cross-entropy by default, so that runs trained
            with different objectives (label smoothing, say) are compared on the same scale.
        scheduler: optional learning-rate scheduler on ``optimizer``.
        scheduler_interval: ``"epoch"`` or ``"batch"``: when ``scheduler.step()`` is called.
        patience: stop after this many epochs without improvement; ``None`` runs every epoch.
        monitor: ``"val_loss"`` or ``"val_acc"``.
        restore_best: load the best epoch's weights at the end.
        transform: ``transform(x_batch, generator)`` → augmented batch, or ``None``.

    Returns:
        The :class:`History` of the run.

    Raises:
        ValueError: on mismatched or empty splits or an invalid setting.
    """
    if x_train.shape[0] != y_train.shape[0] or x_train.shape[0] == 0:
        raise ValueError(f"x_train has {x_train.shape[0]} examples and y_train {y_train.shape[0]}; need equal and non-zero")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got epochs={epochs}, batch_size={batch_size}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be a positive int or None, got {patience}")
    if monitor not in ("val_loss", "val_acc"):
        raise ValueError(f"monitor must be 'val_loss' or 'val_acc', got {monitor!r}")
    if scheduler_interval not in ("epoch", "batch"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'batch', got {scheduler_interval!r}")
    dev = _model_device(model)
    x_train, y_train = x_train.to(dev), y_train.to(dev)
    N = x_train.shape[0]
    history = History()
    best_score, best_state = None, None
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(N, generator=generator).to(dev)  # (N,) this epoch's shuffle
        total, seen = 0.0, 0
        for start in range(0, N, batch_size):
            idx = order[start : start + batch_size]  # (b,)
            xb, yb = x_train[idx], y_train[idx]
            if transform is not None:
                xb = transform(xb, generator)
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None and scheduler_interval == "batch":
                scheduler.step()
            total += loss.item() * idx.numel()
            seen += idx.numel()
        val_loss, val_acc = evaluate_classifier(model, x_val, y_val, val_loss_fn)
        history.train_loss.append(total / seen)
        history.val_loss.append(val_loss)
        history.val_acc.append(val_acc)
        if scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        score = -val_loss if monitor == "val_loss" else val_acc  # higher is better
        if best_score is None or score > best_score:
            best_score, history.best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif patience is not None and epoch - history.best_epoch >= patience:
            history.stopped_early = epoch < epochs - 1
            break
    if restore_best and best_state is not None:
        model.load_state_dict(best_state)
    return history


def _model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")
