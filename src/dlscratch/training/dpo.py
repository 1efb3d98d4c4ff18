r"""Direct preference optimisation (Rafailov et al., 2023): the RLHF objective solved in closed form.

The KL-constrained reward maximisation of RLHF has the optimum
:math:`\pi^*(y \mid x) \propto \pi_\text{ref}(y \mid x)\, e^{r(x, y)/\beta}`, so a policy defines an
*implicit reward* :math:`\hat r(x, y) = \beta \log \frac{\pi(y \mid x)}{\pi_\text{ref}(y \mid x)}` (up to
a function of :math:`x`, which cancels in a pair). Putting it into the Bradley-Terry loss trains the
policy directly on the preference pairs: no reward model, no sampling, no value function.
Chapter 31, *Alignment*.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .callbacks import Callback
from .loop import train
from .preference import PreferencePairs, response_logprobs
from .reward import bradley_terry_loss, pair_batches
from .state import TrainState

__all__ = ["check_beta", "dpo_loss", "train_dpo"]


def check_beta(beta: float, name: str = "beta") -> None:
    r"""Raise ``ValueError`` unless :math:`\beta > 0` (the strength of the KL constraint); ``name`` is the argument's name in the message."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise ValueError(f"{name} must be a positive number (beta, the KL penalty's strength), got {name}={beta!r}")


def dpo_loss(pi_chosen: torch.Tensor, pi_rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float) -> torch.Tensor:
    r"""The DPO loss: Bradley-Terry on the implicit rewards :math:`\beta \log \pi / \pi_\text{ref}`.

    .. math::

        \mathcal{L}_\text{DPO} = -\frac{1}{N} \sum_i \log \sigma\Bigl(
            \beta \log \frac{\pi(y_{w,i} \mid x_i)}{\pi_\text{ref}(y_{w,i} \mid x_i)}
          - \beta \log \frac{\pi(y_{l,i} \mid x_i)}{\pi_\text{ref}(y_{l,i} \mid x_i)} \Bigr)

    Args:
        pi_chosen: :math:`\log \pi(y_w \mid x)`, summed over the response tokens, :math:`(N,)`.
        pi_rejected: :math:`\log \pi(y_l \mid x)`, :math:`(N,)`.
        ref_chosen: :math:`\log \pi_\text{ref}(y_w \mid x)`, :math:`(N,)`.
        ref_rejected: :math:`\log \pi_\text{ref}(y_l \mid x)`, :math:`(N,)`.
        beta: :math:`\beta > 0`.

    Raises:
        ValueError: if ``beta`` is not positive.
    """
    check_beta(beta)
    return bradley_terry_loss(beta * (pi_chosen - ref_chosen), beta * (pi_rejected - ref_rejected))


def train_dpo(policy: nn.Module, ref: nn.Module, pairs: PreferencePairs, beta: float, *, epochs: int = 2,
              batch_size: int = 64, lr: float = 5e-4, seed: int = 0,
              callbacks: Sequence[Callback] = ()) -> TrainState:
    r"""Train ``policy`` on ``pairs`` with :func:`dpo_loss` against the frozen ``ref`` (AdamW, constant rate, clip 1).

    The reference log-probabilities are computed once, before training. ``callbacks`` go to
    :func:`~dlscratch.training.loop.train` (to measure the policy along the way).

    Raises:
        ValueError: if ``beta`` is not positive.
    """
    check_beta(beta)
    dev = next(policy.parameters()).device
    chosen, rejected, P = pairs.chosen.to(dev), pairs.rejected.to(dev), pairs.prompt_len
    with torch.no_grad():
        ref.eval()
        ref_c, ref_r = response_logprobs(ref, chosen, P), response_logprobs(ref, rejected, P)  # (N,) each

    def loss_fn(model: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        logp = response_logprobs(model, torch.cat([chosen[idx], rejected[idx]]), P)  # (2b,)
        pi_c, pi_r = logp.chunk(2)
        return dpo_loss(pi_c, pi_r, ref_c[idx], ref_r[idx], beta)

    steps = epochs * -(-len(pairs) // batch_size)
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    batches = pair_batches(len(pairs), batch_size, epochs, torch.Generator().manual_seed(seed))
    return train(policy, batches, opt, steps=steps, loss_fn=loss_fn, grad_clip=1.0, callbacks=callbacks)
