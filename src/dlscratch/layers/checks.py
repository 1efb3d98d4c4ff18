r"""Argument checks shared by the layers (not part of the maths a chapter shows)."""

from __future__ import annotations

from typing import Any

__all__ = ["check_positive_int"]


def check_positive_int(name: str, value: Any) -> None:
    r"""Raise ``ValueError`` naming ``name`` and ``value`` unless ``value`` is an ``int >= 1`` (``bool`` excluded)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
