r"""Plotting helpers shared by every chapter."""

from .style import use_book_style

__all__ = ["use_book_style"]
