r"""RMSprop: divide each coordinate's step by a running root-mean-square of its gradients.

Introduced in chapter 7, *Optimizers, schedules and training mechanics*.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .base import ScratchOptimizer, check_flag, check_nonnegative, check_unit_interval

__all__ = ["RMSprop"]


class RMSprop(ScratchOptimizer):
    r"""RMSprop (Tieleman & Hinton, 2012), optionally centred and with momentum.

    .. math::

        \mathbf{g}_t &\leftarrow \mathbf{g}_t + \lambda \theta_{t-1} \\
        \mathbf{s}_t &= \alpha \mathbf{s}_{t-1} + (1 - \alpha) \mathbf{g}_t^2,
            \qquad \mathbf{s}_0 = \mathbf{0} \\
        \mathbf{r}_t &= \sqrt{\mathbf{s}_t} + \epsilon
            \quad\text{or, centred,}\quad
            \sqrt{\mathbf{s}_t - \bar{\mathbf{g}}_t^2} + \epsilon,
            \qquad \bar{\mathbf{g}}_t = \alpha \bar{\mathbf{g}}_{t-1} + (1 - \alpha)\mathbf{g}_t \\
        \mathbf{b}_t &= \mu \mathbf{b}_{t-1} + \mathbf{g}_t / \mathbf{r}_t \\
        \theta_t &= \theta_{t-1} - \eta \, \mathbf{b}_t

    All operations are element-wise. With :math:`\mu = 0`, :math:`\mathbf{b}_t` is simply
    :math:`\mathbf{g}_t / \mathbf{r}_t`. Same conventions (and defaults) as
    ``torch.optim.RMSprop``: no bias correction, :math:`\epsilon` outside the square root.

    Derivation and experiments: chapter 7.

    Args:
        params: the parameters to optimize, or a list of parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`.
        alpha: decay of the running mean of squares, in :math:`[0, 1)`.
        eps: :math:`\epsilon \ge 0` added to the root mean square.
        weight_decay: L2 coefficient :math:`\lambda \ge 0`.
        momentum: momentum :math:`\mu \in [0, 1)`.
        centered: subtract the square of the running mean gradient (an estimate of the variance).

    Raises:
        ValueError: naming the option, for any value outside the ranges above.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        r"""Check every option of one parameter group."""
        check_nonnegative("lr", group["lr"])
        check_unit_interval("alpha", group["alpha"])
        check_nonnegative("eps", group["eps"])
        check_nonnegative("weight_decay", group["weight_decay"])
        check_unit_interval("momentum", group["momentum"])
        check_flag("centered", group["centered"])

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        r"""One step for ``p``: L2 decay, the running mean of squares, then the (momentum) step."""
        lr, alpha, eps, wd, mu = (group[k] for k in ("lr", "alpha", "eps", "weight_decay", "momentum"))
        g = grad
        if wd != 0:
            g = g + wd * p
        if not state:
            state["step"] = 0
            state["square_avg"] = torch.zeros_like(p)
            if mu > 0:
                state["momentum_buffer"] = torch.zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(p)
        state["step"] += 1
        s = state["square_avg"]
        s.mul_(alpha).add_((1 - alpha) * g * g)  # s_t = alpha s_{t-1} + (1 - alpha) g^2
        if group["centered"]:
            g_bar = state["grad_avg"]
            g_bar.mul_(alpha).add_((1 - alpha) * g)
            rms = (s - g_bar * g_bar).sqrt() + eps
        else:
            rms = s.sqrt() + eps
        if mu > 0:
            buf = state["momentum_buffer"]
            buf.mul_(mu).add_(g / rms)
            p.sub_(lr * buf)
        else:
            p.sub_(lr * g / rms)
