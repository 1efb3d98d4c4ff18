r"""The book's text corpora, loaded through :func:`dlscratch.data.fetch`."""

from __future__ import annotations

from .download import fetch

__all__ = ["load_names", "load_shakespeare"]


def load_names() -> list[str]:
    r"""The 32,033 lowercase first names of ``names.txt``, in file order.

    Returns:
        One string per non-empty line.
    """
    text = fetch("names.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line]


def load_shakespeare() -> str:
    r"""The 1,115,394 characters of TinyShakespeare as one string."""
    return fetch("tinyshakespeare.txt").read_text(encoding="utf-8")
