"""Checks for exercise checkers: the solution passes, each wrong answer fails with a hint, ``...`` is open."""

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


def assert_correct(name: str, answer: Any) -> None:
    """``grade(name, answer)`` accepts ``answer`` with a ✓ message."""
    verdict = grade(name, answer)
    assert verdict.correct is True and verdict.message.startswith("✓"), verdict.message


def assert_rejected(name: str, answer: Any) -> None:
    """``grade(name, answer)`` rejects ``answer`` (✗) or, for a placeholder, reports it not attempted (○)."""
    verdict = grade(name, answer)
    assert (verdict.correct, verdict.message[0]) in {(False, "✗"), (None, "○")}, verdict.message


def assert_hint(name: str, answer: Any, hint: str) -> None:
    """``grade(name, answer)`` rejects ``answer`` with a message that contains ``hint``."""
    verdict = grade(name, answer)
    assert verdict.correct is False and hint in verdict.message, verdict.message
