r"""Learning-rate schedules as pure functions of the step.

Each schedule returns the *multiplier* :math:`f(s)` of the base learning rate for the update
that follows ``s`` completed updates (``s = 0`` for the first one), which is exactly the
``lr_lambda`` convention of :class:`torch.optim.lr_scheduler.LambdaLR`. So the same function
drives a torch scheduler, any optimizer in :mod:`dlscratch.optimizers` (they are torch
optimizers) or a hand-written loop:

.. code-block:: python

    fn = lr_lambda(warmup_cosine, warmup_steps=100, total_steps=1000)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, fn)  # opt: any torch optimizer, ours too
    lr = peak_lr * fn(step)                             # or by hand

Introduced in chapter 7, *Optimizers, schedules and training mechanics*.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

__all__ = ["constant", "step_decay", "warmup_cosine", "inverse_sqrt", "lr_lambda"]


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")


def constant(step: int) -> float:
    r"""No schedule: every update uses the base learning rate, :math:`f(s) = 1`.

    Equals ``torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0)``.

    Args:
        step: completed updates :math:`s \ge 0`.

    Returns:
        1.0.
    """
    _check_int("step", step, 0)
    return 1.0


def step_decay(step: int, step_size: int, gamma: float = 0.1) -> float:
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    .. math::

        f(s) = \gamma^{\lfloor s / k \rfloor}

    Equals ``torch.optim.lr_scheduler.StepLR(opt, step_size=k, gamma=gamma)``.

    Args:
        step: completed updates :math:`s \ge 0`.
        step_size: :math:`k \ge 1`.
        gamma: the decay factor, in :math:`(0, 1]`.

    Returns:
        The multiplier of the base learning rate.
    """
    _check_int("step", step, 0)
    _check_int("step_size", step_size, 1)
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got gamma={gamma!r}")
    return gamma ** (step // step_size)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    r"""Linear warm-up to the peak, then a cosine decay to ``min_ratio`` at the last update.

    With :math:`w` warm-up steps, :math:`S` updates in all and floor :math:`r`:

    .. math::

        f(s) = \begin{cases}
            \dfrac{s + 1}{w} & s < w \\[1ex]
            r + (1 - r)\,\dfrac{1}{2}\left(1 + \cos\dfrac{\pi\,(s - w + 1)}{S - w}\right)
                & w \le s < S \\[1ex]
            r & s \ge S
        \end{cases}

    The first update already uses :math:`\eta/w` (not 0), update :math:`w` (``s = w - 1``) uses
    the peak, and update :math:`S` (``s = S - 1``) uses :math:`r\eta`. ``warmup_steps=1`` means
    no warm-up. Equals ``LinearLR(start_factor=1/w, total_iters=w-1)`` followed by
    ``CosineAnnealingLR(T_max=S-w, eta_min=r * lr)`` in a ``SequentialLR``.

    Args:
        step: completed updates :math:`s \ge 0`.
        warmup_steps: :math:`w \ge 1`.
        total_steps: :math:`S > w`.
        min_ratio: :math:`r \in [0, 1]`, the final learning rate as a fraction of the peak.

    Returns:
        The multiplier of the peak learning rate.
    """
    _check_int("step", step, 0)
    _check_int("warmup_steps", warmup_steps, 1)
    _check_int("total_steps", total_steps, warmup_steps + 1)
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got min_ratio={min_ratio!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(step - warmup_steps + 1, total_steps - warmup_steps) / (total_steps - warmup_steps)  # in (0, 1]
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def inverse_sqrt(step: int, d_model: int, warmup_steps: int = 4000) -> float:
    r"""The Transformer's schedule (Vaswani et al., 2017, eq. 3).

    .. math::

        f(s) = d_{\text{model}}^{-1/2} \min\left(n^{-1/2},\; n \, w^{-3/2}\right), \qquad n = s + 1

    :math:`n` is the paper's ``step_num`` (1 for the first update): a linear rise for
    :math:`w` steps, peaking at :math:`(d_{\text{model}}\,w)^{-1/2}`, then decay as
    :math:`1/\sqrt{n}`. The paper uses it as the learning rate itself, so pair it with a base
    learning rate of 1 (or a scale factor).

    Args:
        step: completed updates :math:`s \ge 0`.
        d_model: the model width :math:`d_{\text{model}} \ge 1`.
        warmup_steps: :math:`w \ge 1` (4000 in the paper).

    Returns:
        The learning rate (multiplier of a base rate of 1).
    """
    _check_int("step", step, 0)
    _check_int("d_model", d_model, 1)
    _check_int("warmup_steps", warmup_steps, 1)
    n = step + 1
    return d_model**-0.5 * min(n**-0.5, n * warmup_steps**-1.5)


def lr_lambda(schedule: Callable[..., float], **kwargs: Any) -> Callable[[int], float]:
    r"""Bind a schedule's settings, checking them now: the result maps a step to a multiplier.

    ``lr_lambda(warmup_cosine, warmup_steps=10, total_steps=100)`` is a picklable function of
    the step, ready for :class:`torch.optim.lr_scheduler.LambdaLR` or a hand-written loop. A bad
    setting raises :class:`ValueError` here rather than at some later step.

    Args:
        schedule: one of :func:`constant`, :func:`step_decay`, :func:`warmup_cosine`, :func:`inverse_sqrt`.
        **kwargs: its settings (everything but ``step``).

    Returns:
        ``step -> multiplier``.
    """
    fn = functools.partial(schedule, **kwargs)
    fn(0)  # validates the settings (raises ValueError)
    return fn
