r"""The Bradley-Terry reward model of RLHF (Christiano et al., 2017; Ouyang et al., 2022).

A reward model :math:`r_\phi(x, y)` is trained on pairs where a judge preferred :math:`y_w` to
:math:`y_l` after the same prompt :math:`x`. The Bradley-Terry model says the judge prefers
:math:`y_w` with probability :math:`\sigma(r(x, y_w) - r(x, y_l))`; maximising the likelihood of the
observed preferences is a logistic loss on the reward *difference*. Chapter 31, *Alignment*.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ..models.scalar_head import ScalarHeadLM
from .loop import train
from .preference import PreferencePairs
from .state import TrainState

__all__ = ["bradley_terry_loss", "pair_batches", "train_reward_model", "pairwise_accuracy"]


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    r"""The negative log-likelihood of the preferences under Bradley-Terry, averaged over pairs.

    .. math::

        \mathcal{L} = -\frac{1}{N} \sum_{i} \log \sigma\bigl(r(x_i, y_{w,i}) - r(x_i, y_{l,i})\bigr)

    Shape:
        - r_chosen, r_rejected: :math:`(N,)`; output: a scalar
    """
    if r_chosen.shape != r_rejected.shape:
        raise ValueError(f"need one rejected reward per chosen one, got shapes {tuple(r_chosen.shape)} and {tuple(r_rejected.shape)}")
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def pair_batches(n_pairs: int, batch_size: int, epochs: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    r"""``epochs`` shuffled passes over ``n_pairs`` pair indices, in batches of ``batch_size`` (the last of each pass may be short)."""
    for _ in range(epochs):
        yield from torch.randperm(n_pairs, generator=generator).split(batch_size)


def train_reward_model(rm: ScalarHeadLM, pairs: PreferencePairs, *, epochs: int = 2, batch_size: int = 64,
                       lr: float = 1e-3, seed: int = 0) -> TrainState:
    r"""Fit ``rm`` to ``pairs`` with :func:`bradley_terry_loss` (AdamW, constant rate, gradient clip 1); returns the loop's state.

    The reward of a row is the scalar at its last token (:meth:`ScalarHeadLM.score`); each batch
    scores its chosen and rejected rows in one forward pass.
    """
    dev = rm.head.weight.device
    chosen, rejected = pairs.chosen.to(dev), pairs.rejected.to(dev)

    def loss_fn(model: ScalarHeadLM, idx: torch.Tensor) -> torch.Tensor:
        r = model.score(torch.cat([chosen[idx], rejected[idx]]))  # (2b,)
        return bradley_terry_loss(*r.chunk(2))

    steps = epochs * -(-len(pairs) // batch_size)
    opt = torch.optim.AdamW(rm.parameters(), lr=lr, weight_decay=0.0)
    batches = pair_batches(len(pairs), batch_size, epochs, torch.Generator().manual_seed(seed))
    return train(rm, batches, opt, steps=steps, loss_fn=loss_fn, grad_clip=1.0)


@torch.inference_mode()
def pairwise_accuracy(rm: ScalarHeadLM, pairs: PreferencePairs, batch_size: int = 512) -> float:
    r"""The share of ``pairs`` whose chosen row ``rm`` scores higher than the rejected one (evaluation mode, restored)."""
    was_training = rm.training
    rm.eval()
    try:
        dev = rm.head.weight.device
        wins = sum(
            (rm.score(c.to(dev)) > rm.score(r.to(dev))).sum().item()
            for c, r in zip(pairs.chosen.split(batch_size), pairs.rejected.split(batch_size))
        )
    finally:
        rm.train(was_training)
    return wins / len(pairs)
