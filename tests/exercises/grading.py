"""One check for an exercise checker: the solution passes, each wrong answer fails with a hint, ``...`` is open."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dlscratch.exercises import grade


def assert_grades(name: str, solution: Callable[[], Any], wrongs: Sequence[Callable[[], Any]]) -> None:
    """``grade(name, ...)`` accepts ``solution()``, rejects every ``wrong()`` with a ✗ message, and reports ``...`` as not attempted."""
    verdict = grade(name, solution())
    assert verdict.correct is True, verdict.message
    for wrong in wrongs:
        verdict = grade(name, wrong())
        assert verdict.correct is False, (name, verdict.message)
        assert "not" in verdict.message or "✗" in verdict.message
    assert grade(name, ...).correct is None
