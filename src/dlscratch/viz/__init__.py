r"""Plotting helpers shared by every chapter."""

from .attention import attention_map
from .style import use_book_style

__all__ = ["attention_map", "use_book_style"]
