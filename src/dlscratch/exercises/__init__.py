r"""Self-checking exercises.

Each chapter ends with exercises. The reader writes an answer in a cell and passes it to
:func:`check` under the exercise's name; the checker (kept here, by topic, not on the page)
compares it with an independent computation and prints whether it is right, with a hint when it
is not. An answer left as ``...`` (or a function that raises ``NotImplementedError``) is reported
as not attempted, so the built book executes cleanly with the exercises still open.
"""

from .core import EXERCISES, Verdict, check, exercise, grade

__all__ = ["EXERCISES", "Verdict", "check", "exercise", "grade"]
