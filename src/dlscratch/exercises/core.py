r"""The exercise registry and the :func:`check` entry point."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["EXERCISES", "check", "grade", "exercise", "NotAttempted", "Verdict"]

Checker = Callable[[Any], None]

EXERCISES: dict[str, Checker] = {}  # exercise name -> checker raising AssertionError on a wrong answer

# topic modules that register checkers, imported lazily on the first check(): every module of this
# package but these (None: discover them; a test may set a tuple of names instead)
_NOT_TOPICS = frozenset({"core", "answers"})
_TOPICS: tuple[str, ...] | None = None


class NotAttempted(Exception):
    r"""Raised by a checker when the reader's answer is still a placeholder."""


def exercise(name: str) -> Callable[[Checker], Checker]:
    r"""Register ``fn(answer)`` as the checker of exercise ``name``.

    The checker raises :class:`AssertionError` with a hint when the answer is wrong, and
    :class:`NotAttempted` (or lets ``NotImplementedError`` escape) when there is no answer yet.
    """

    def register(fn: Checker) -> Checker:
        if name in EXERCISES:
            raise ValueError(f"exercise {name!r} is registered twice")
        EXERCISES[name] = fn
        return fn

    return register


def _topics() -> tuple[str, ...]:
    if _TOPICS is not None:
        return _TOPICS
    package = importlib.import_module(__package__)
    return tuple(sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name not in _NOT_TOPICS))


def _load_topics() -> None:
    for topic in _topics():
        importlib.import_module(f"{__package__}.{topic}")


class Verdict(NamedTuple):
    r"""The outcome of checking one answer."""

    correct: bool | None  # True right, False wrong, None not attempted
    message: str  # what :func:`check` prints


def grade(name: str, answer: Any) -> Verdict:
    r"""Check the reader's answer to exercise ``name`` and return the verdict without printing.

    Args:
        name: the exercise's name as printed in the chapter, e.g. ``"attention.padding_mask"``.
        answer: the reader's answer: a value or a function, as the exercise asks. ``...`` means
            not attempted yet.

    Returns:
        A :class:`Verdict`: ``correct`` is ``True``, ``False``, or ``None`` when not attempted.

    Raises:
        ValueError: if no exercise has that name.
    """
    _load_topics()
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; known: {sorted(EXERCISES)}")
    if answer is ...:
        return Verdict(None, f"○ {name}: not attempted yet. Replace the `...` with your answer and run again.")
    try:
        EXERCISES[name](answer)
    except (NotAttempted, NotImplementedError):
        return Verdict(None, f"○ {name}: not attempted yet. Fill in your answer and run again.")
    except AssertionError as err:
        return Verdict(False, f"✗ {name}: not yet. {err}")
    return Verdict(True, f"✓ {name}: correct!")


def check(name: str, answer: Any) -> None:
    r"""Check the reader's answer to exercise ``name`` and print the verdict (see :func:`grade`)."""
    print(grade(name, answer).message)
