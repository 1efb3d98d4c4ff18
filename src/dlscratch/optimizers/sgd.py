r"""Stochastic gradient descent with momentum and Nesterov momentum.

Introduced in chapter 7, *Optimizers, schedules and training mechanics*.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .base import ScratchOptimizer, check_flag, check_nonnegative, check_unit_interval

__all__ = ["SGD"]


class SGD(ScratchOptimizer):
    r"""SGD with optional (Nesterov) momentum and L2 weight decay.

    With gradient :math:`\mathbf{g}_t = \nabla_\theta \mathcal{L}(\theta_{t-1})`, learning rate
    :math:`\eta`, momentum :math:`\mu` and weight decay :math:`\lambda`:

    .. math::

        \mathbf{g}_t &\leftarrow \mathbf{g}_t + \lambda \theta_{t-1} \\
        \mathbf{b}_t &= \mu \mathbf{b}_{t-1} + \mathbf{g}_t, \qquad \mathbf{b}_1 = \mathbf{g}_1 \\
        \mathbf{d}_t &= \begin{cases} \mathbf{g}_t + \mu \mathbf{b}_t & \text{Nesterov} \\
                                      \mathbf{b}_t & \text{otherwise} \end{cases} \\
        \theta_t &= \theta_{t-1} - \eta \, \mathbf{d}_t

    With :math:`\mu = 0` this is plain gradient descent. The buffer :math:`\mathbf{b}` is the
    heavy-ball velocity of Polyak (1964) written without the factor :math:`\eta`, as in
    ``torch.optim.SGD`` with ``dampening=0``; the Nesterov form is that of Sutskever et al.
    (2013). Weight decay here is an L2 penalty :math:`\tfrac{\lambda}{2}\lVert\theta\rVert^2`
    added to the loss; for SGD it is the same as shrinking the weights (for Adam it is not, see
    :class:`~dlscratch.optimizers.adam.AdamW`).

    Derivation and experiments: chapter 7.

    Args:
        params: the parameters to optimize, or a list of parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`.
        momentum: momentum :math:`\mu \in [0, 1)`.
        weight_decay: L2 coefficient :math:`\lambda \ge 0`.
        nesterov: use Nesterov momentum (needs ``momentum > 0``).

    Raises:
        ValueError: naming the option, for a negative ``lr`` or ``weight_decay``, a ``momentum``
            outside :math:`[0, 1)`, ``nesterov`` without momentum, or an unknown group option.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))

    def check_group(self, group: dict[str, Any]) -> None:
        r"""Check ``lr``, ``momentum``, ``weight_decay`` and ``nesterov`` of one group."""
        check_nonnegative("lr", group["lr"])
        check_unit_interval("momentum", group["momentum"])
        check_nonnegative("weight_decay", group["weight_decay"])
        check_flag("nesterov", group["nesterov"])
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError(f"nesterov=True needs momentum > 0, got momentum={group['momentum']!r}")

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        r"""One step for ``p``: L2 decay, then (Nesterov) momentum, then :math:`\theta \leftarrow \theta - \eta\,g`."""
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        g = grad
        if wd != 0:
            g = g + wd * p  # L2 penalty: its gradient is wd * p
        if mu != 0:
            if "momentum_buffer" not in state:
                buf = state["momentum_buffer"] = g.clone()  # b_1 = g_1
            else:
                buf = state["momentum_buffer"]
                buf.mul_(mu).add_(g)  # b_t = mu * b_{t-1} + g_t
            g = g + mu * buf if group["nesterov"] else buf
        p.sub_(lr * g)
