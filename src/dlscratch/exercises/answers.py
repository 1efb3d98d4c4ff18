r"""Checks on the form of a reader's answer, shared by the exercise checkers.

They raise :class:`AssertionError` with a hint, which :func:`~dlscratch.exercises.check` prints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["require_callable", "require_number", "close", "grade_number"]


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


def close(a: float, b: float, rel: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    r"""Whether two numbers agree to a relative tolerance ``rel`` (or an absolute ``abs_tol`` near 0)."""
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def grade_number(
    answer: Any,
    what: str,
    want: float,
    *,
    mistakes: Sequence[tuple[float, str]] = (),
    hint: str,
    rel: float = 1e-6,
    abs_tol: float = 1e-9,
) -> float:
    r"""Grade a numeric answer from a table of known mistakes.

    The answer passes when it is :func:`close` to ``want``. Otherwise the hint of the first
    ``(value, hint)`` in ``mistakes`` that it is close to is raised, so a reader who made that
    mistake is told which one; failing all, ``hint`` is raised after the reader's number.

    Returns:
        The answer as a float, when it is right.

    Raises:
        AssertionError: with the matching hint, when it is wrong.
    """
    got = require_number(answer, what)
    if close(got, want, rel, abs_tol):
        return got
    for value, mistake in mistakes:
        if close(got, value, rel, abs_tol):
            raise AssertionError(mistake)
    raise AssertionError(f"{got:g} is not it: {hint}")
