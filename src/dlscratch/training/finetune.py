r"""Fine-tuning a sequence classifier (GPT-1's second stage) through the book's one loop.

:func:`fine_tune` trains a model called as ``model(idx, lengths, labels) -> (logits, loss)``
(:class:`~dlscratch.models.gpt1.GPT1Classifier`) for a few epochs over right-padded token rows,
in batches of similar lengths (:func:`length_buckets`), with :func:`~dlscratch.training.loop.train`, AdamW (decay on matrices only, as
:func:`~dlscratch.training.lm.make_optimizer`), a linear warm-up and a cosine decay to 0. Each
batch is cut to its longest row, so short texts cost less. :func:`classifier_accuracy` scores a
split in evaluation mode. Chapter 27, *GPT-1 and GPT-2*.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..optimizers.schedules import lr_lambda, warmup_cosine
from .lm import LMTrainConfig, make_optimizer
from .loop import train
from .state import TrainState

__all__ = ["FineTuneConfig", "length_buckets", "fine_tune", "classifier_accuracy"]


@dataclass(frozen=True)
class FineTuneConfig:
    r"""Settings of a fine-tuning run (GPT-1's: 3 epochs, batch 32, peak rate 6.25e-5, 0.2 % warm-up)."""

    epochs: int = 3  # passes over the labelled examples
    batch_size: int = 32  # rows per update
    lr: float = 6.25e-5  # peak learning rate
    warmup_fraction: float = 0.002  # share of the updates spent warming up linearly
    weight_decay: float = 0.01  # AdamW's decoupled decay, on matrices and embeddings only
    grad_clip: float = 1.0  # global gradient-norm clip, 0 for none
    seed: int = 0  # seeds the order of the examples

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if not self.lr > 0 or not 0 <= self.warmup_fraction < 1 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(f"need lr > 0, 0 <= warmup_fraction < 1, weight_decay >= 0, grad_clip >= 0; got {self}")


def length_buckets(lengths: torch.Tensor, batch_size: int, generator: torch.Generator, pool: int = 50) -> list[torch.Tensor]:
    r"""One epoch of batches of similar lengths: shuffle, sort each pool of ``pool`` batches by length, cut, shuffle the batches.

    Every example appears once. Rows of a batch are then padded to nearly the same length, which
    saves most of the padding's computation, while the batches still come in random order.
    """
    lengths = lengths.cpu()  # the indices are drawn on the CPU
    N = lengths.numel()
    order = torch.randperm(N, generator=generator)  # (N,)
    batches = []
    for s in range(0, N, pool * batch_size):
        chunk = order[s : s + pool * batch_size]
        chunk = chunk[lengths[chunk].argsort(stable=True)]  # this pool, shortest first
        batches.extend(chunk.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _batches(ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, cfg: FineTuneConfig) -> Iterator[tuple[torch.Tensor, ...]]:
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        for idx in length_buckets(lengths, cfg.batch_size, gen):
            L = int(lengths[idx].max())  # cut the padding columns no row of this batch needs
            idx = idx.to(ids.device)
            yield ids[idx, :L], lengths[idx], labels[idx]


def fine_tune(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, cfg: FineTuneConfig) -> TrainState:
    r"""Fine-tune ``model`` on ``(ids, lengths, labels)`` for ``cfg.epochs`` epochs; returns the loop's state.

    Shape:
        - ids: :math:`(N, L)` right-padded rows on the model's device; lengths, labels: :math:`(N,)`
    """
    if not ids.size(0) == lengths.size(0) == labels.size(0) > 0:
        raise ValueError(f"need as many lengths and labels as rows (and some), got {ids.size(0)}, {lengths.size(0)}, {labels.size(0)}")
    steps = cfg.epochs * len(length_buckets(lengths, cfg.batch_size, torch.Generator().manual_seed(0)))
    warmup = max(1, round(cfg.warmup_fraction * steps))
    opt = make_optimizer(model, LMTrainConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, beta2=0.999, steps=2, warmup_steps=1))
    schedule = lr_lambda(warmup_cosine, warmup_steps=warmup, total_steps=max(steps, warmup + 1), min_ratio=0.0)
    return train(model, _batches(ids, lengths, labels, cfg), opt, schedule, steps=steps, grad_clip=cfg.grad_clip,
                 loss_fn=lambda m, b: m(*b)[1])


@torch.inference_mode()
def classifier_accuracy(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    r"""Accuracy of ``model(idx, lengths)``'s arg-max on a split, in evaluation mode (restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        correct = 0
        for s in range(0, ids.size(0), batch_size):
            L = int(lengths[s : s + batch_size].max())
            logits, _ = model(ids[s : s + batch_size, :L], lengths[s : s + batch_size])  # (b, K)
            correct += (logits.argmax(-1) == labels[s : s + batch_size].to(logits.device)).sum().item()
    finally:
        model.train(was_training)
    return correct / ids.size(0)
