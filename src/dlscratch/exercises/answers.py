r"""Checks on the form of a reader's answer, shared by the exercise checkers.

They raise :class:`AssertionError` with a hint, which :func:`~dlscratch.exercises.check` prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["require_callable", "require_number"]


def require_callable(answer: Any, what: str) -> Callable[..., Any]:
    r"""``answer`` itself if it is callable; otherwise a hint to pass the function ``what``."""
    if not callable(answer):
        raise AssertionError(f"pass your function itself ({what}), not {type(answer).__name__}.")
    return answer


def require_number(answer: Any, what: str) -> float:
    r"""``answer`` as a float: a finite Python number or a one-element tensor (not a bool)."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise AssertionError(f"give {what} as a number, got {answer!r}.")
    if not math.isfinite(answer):
        raise AssertionError(f"{what} must be finite, got {answer}.")
    return float(answer)
