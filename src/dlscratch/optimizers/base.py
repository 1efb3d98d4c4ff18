r"""The base class of the book's optimizers: torch's bookkeeping, our own checks.

Every optimizer in :mod:`dlscratch.optimizers` subclasses :class:`torch.optim.Optimizer`, so
parameter groups, ``zero_grad``, ``state_dict`` / ``load_state_dict`` (checkpointing) and
``torch.optim.lr_scheduler`` all work unchanged. What each subclass writes itself is the update
rule, with explicit tensor operations. This base adds one thing torch leaves out: every option of
every parameter group is checked, and a wrong one raises :class:`ValueError` naming it.

Introduced in chapter 7, *Optimizers, schedules and training mechanics*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["ScratchOptimizer", "check_betas", "check_flag", "check_nonnegative", "check_unit_interval"]


def check_nonnegative(name: str, value: Any) -> None:
    r"""Raise :class:`ValueError` unless ``value`` is a finite real number :math:`\ge 0`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")


def check_unit_interval(name: str, value: Any) -> None:
    r"""Raise :class:`ValueError` unless ``value`` lies in :math:`[0, 1)`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {name}={value!r}")


def check_flag(name: str, value: Any) -> None:
    r"""Raise :class:`ValueError` unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {name}={value!r}")


def check_betas(value: Any) -> None:
    r"""Raise :class:`ValueError` unless ``value`` is a pair of numbers in :math:`[0, 1)`."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got betas={value!r}")
    for i, beta in enumerate(value):
        check_unit_interval(f"betas[{i}]", beta)


class ScratchOptimizer(torch.optim.Optimizer):
    r"""A :class:`torch.optim.Optimizer` whose parameter groups are validated.

    Subclasses call ``super().__init__(params, defaults)`` and implement :meth:`check_group`
    (raise :class:`ValueError` on a bad option) and :meth:`update`, the rule for one parameter;
    :meth:`step` applies it to every parameter that has a gradient. A parameter group with a key
    that is not one of the optimizer's options (a typo such as ``momentun``) is rejected too:
    torch would silently ignore it.
    """

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]) -> None:
        self.check_group(defaults)  # fail on the constructor's arguments before anything else
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:  # pragma: no cover - abstract
        r"""Raise :class:`ValueError` naming the first invalid option of ``group``."""
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        r"""Add a parameter group after checking its keys and values (see :meth:`check_group`)."""
        unknown = sorted(set(param_group) - set(self.defaults) - {"params"})
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for {type(self).__name__}; known: {sorted(self.defaults)}"
            )
        self.check_group({**self.defaults, **param_group})  # before torch stores the group
        super().add_param_group(param_group)

    def update(self, p: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:  # pragma: no cover - abstract
        r"""Update the parameter ``p`` in place from its gradient, its ``state`` and its group's options."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        r"""Apply :meth:`update` to every parameter that has a gradient.

        Args:
            closure: optional function that re-evaluates the model and returns the loss.

        Returns:
            The loss returned by ``closure``, if one was given.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, self.state[p], group)
        return loss
