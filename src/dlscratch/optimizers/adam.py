r"""Adam with L2 weight decay, and AdamW with decoupled weight decay.

Introduced in chapter 7, *Optimizers, schedules and training mechanics*.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .base import ScratchOptimizer, check_betas, check_nonnegative

__all__ = ["adam_update", "Adam", "AdamW"]


def adam_update(
    p: torch.Tensor, g: torch.Tensor, state: dict[str, Any], lr: float, betas: tuple[float, float], eps: float
) -> None:
    r"""One bias-corrected Adam step on ``p`` in place, keeping the moments in ``state``.

    .. math::

        \mathbf{m}_t &= \beta_1 \mathbf{m}_{t-1} + (1 - \beta_1) \mathbf{g}_t, \qquad
        \mathbf{v}_t = \beta_2 \mathbf{v}_{t-1} + (1 - \beta_2) \mathbf{g}_t^2 \\
        \hat{\mathbf{m}}_t &= \frac{\mathbf{m}_t}{1 - \beta_1^t}, \qquad
        \hat{\mathbf{v}}_t = \frac{\mathbf{v}_t}{1 - \beta_2^t} \\
        \theta_t &= \theta_{t-1} - \eta \, \frac{\hat{\mathbf{m}}_t}{\sqrt{\hat{\mathbf{v}}_t} + \epsilon}

    with :math:`\mathbf{m}_0 = \mathbf{v}_0 = \mathbf{0}`. The bias corrections undo the pull of
    those zero initial values towards 0 (Kingma & Ba, 2015).

    Args:
        p: the parameter, updated in place.
        g: its gradient (after any L2 term).
        state: the parameter's optimizer state; ``step``, ``exp_avg`` and ``exp_avg_sq`` are
            created on the first call.
        lr: learning rate :math:`\eta`.
        betas: :math:`(\beta_1, \beta_2)`.
        eps: :math:`\epsilon`.

    Shape:
        - p, g: any shape, the same for both.
    """
    beta1, beta2 = betas
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p)  # m
        state["exp_avg_sq"] = torch.zeros_like(p)  # v
    state["step"] += 1
    t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
    m.mul_(beta1).add_((1 - beta1) * g)
    v.mul_(beta2).add_((1 - beta2) * g * g)
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    p.sub_(lr * m_hat / (v_hat.sqrt() + eps))


class Adam(ScratchOptimizer):
    r"""Adam (Kingma & Ba, 2015) with weight decay as an L2 penalty.

    The decay is added to the gradient before the moments,
    :math:`\mathbf{g}_t \leftarrow \mathbf{g}_t + \lambda\theta_{t-1}`, and then goes through
    :func:`adam_update`, so it is divided by :math:`\sqrt{\hat{\mathbf{v}}_t}` like the rest of
    the gradient: weights with large gradients are decayed less. Compare :class:`AdamW`.
    Matches ``torch.optim.Adam`` (``amsgrad=False``).

    Derivation and experiments: chapter 7.

    Args:
        params: the parameters to optimize, or a list of parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`.
        betas: decay rates :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`.
        eps: :math:`\epsilon \ge 0` added to :math:`\sqrt{\hat{\mathbf{v}}_t}`.
        weight_decay: L2 coefficient :math:`\lambda \ge 0`.

    Raises:
        ValueError: naming the option, for any value outside the ranges above.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def check_group(self, group: dict[str, Any]) -> None:
        r"""Check ``lr``, ``betas``, ``eps`` and ``weight_decay`` of one group."""
        check_nonnegative("lr", group["lr"])
        check_betas(group["betas"])
        check_nonnegative("eps", group["eps"])
        check_nonnegative("weight_decay", group["weight_decay"])

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        r"""One step for ``p``: the L2 decay joins the gradient, then :func:`adam_update`."""
        g = grad
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p  # L2: the decay joins the gradient
        adam_update(p, g, state, group["lr"], group["betas"], group["eps"])


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    The weights are shrunk directly, outside the adaptive step:

    .. math::

        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\, \theta_{t-1} \\
        \theta_t &= \theta_{t-1} - \eta \, \frac{\hat{\mathbf{m}}_t}{\sqrt{\hat{\mathbf{v}}_t} + \epsilon}

    with :math:`\hat{\mathbf{m}}_t, \hat{\mathbf{v}}_t` computed from the raw gradient (see
    :func:`adam_update`). Every weight loses the same fraction :math:`\eta\lambda` per step,
    whatever its gradient history. Matches ``torch.optim.AdamW`` (``amsgrad=False``), including
    its default ``weight_decay=1e-2``.

    Derivation and experiments: chapter 7.

    Args:
        params: the parameters to optimize, or a list of parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`.
        betas: decay rates :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`.
        eps: :math:`\epsilon \ge 0`.
        weight_decay: decoupled decay :math:`\lambda \ge 0`.

    Raises:
        ValueError: naming the option, for any value outside the ranges above.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        r"""One step for ``p``: shrink the weight (decoupled decay), then :func:`adam_update` on the raw gradient."""
        if group["weight_decay"] != 0:
            p.mul_(1 - group["lr"] * group["weight_decay"])  # decoupled: shrink the weight itself
        adam_update(p, grad, state, group["lr"], group["betas"], group["eps"])
