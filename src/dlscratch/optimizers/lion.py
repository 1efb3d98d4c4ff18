r"""Lion: the sign of an interpolated momentum (Chen et al., 2023).

Introduced in chapter 7, *Optimizers, schedules and training mechanics*.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .base import ScratchOptimizer, check_betas, check_nonnegative

__all__ = ["Lion"]


class Lion(ScratchOptimizer):
    r"""Lion (EvoLved Sign Momentum), found by program search (Chen et al., 2023).

    .. math::

        \mathbf{c}_t &= \beta_1 \mathbf{m}_{t-1} + (1 - \beta_1)\mathbf{g}_t \\
        \theta_t &= \theta_{t-1} - \eta \left(\operatorname{sign}(\mathbf{c}_t) + \lambda \theta_{t-1}\right) \\
        \mathbf{m}_t &= \beta_2 \mathbf{m}_{t-1} + (1 - \beta_2)\mathbf{g}_t

    with :math:`\mathbf{m}_0 = \mathbf{0}`. Every coordinate moves by exactly :math:`\pm\eta`
    (or 0) before decay, so the update has the same size as the largest Adam steps; the paper
    recommends a learning rate 3-10x smaller than AdamW's and a decoupled decay
    :math:`\lambda` 3-10x larger. Only one moment is stored (Adam keeps two).

    Derivation and experiments: chapter 7.

    Args:
        params: the parameters to optimize, or a list of parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`.
        betas: :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`; the paper's default is
            ``(0.9, 0.99)``.
        weight_decay: decoupled decay :math:`\lambda \ge 0`.

    Raises:
        ValueError: naming the option, for any value outside the ranges above.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    def check_group(self, group: dict[str, Any]) -> None:
        r"""Check ``lr``, ``betas`` and ``weight_decay`` of one group."""
        check_nonnegative("lr", group["lr"])
        check_betas(group["betas"])
        check_nonnegative("weight_decay", group["weight_decay"])

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        r"""One step for ``p``: decoupled decay, a step of :math:`\pm\eta` per coordinate, then the momentum."""
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state["exp_avg"] = torch.zeros_like(p)  # m
        m = state["exp_avg"]
        c = beta1 * m + (1 - beta1) * grad  # interpolation used only for the sign
        p.mul_(1 - lr * wd)
        p.sub_(lr * torch.sign(c))
        m.mul_(beta2).add_((1 - beta2) * grad)  # the momentum itself uses beta2
