"""Sphinx extension: number equations per chapter, ``(17.3)``, instead of across the book.

Sphinx numbers display maths like figures: with ``math_numfig`` and no numbered toctree, one
counter runs through the whole book, so chapter 17's third equation is ``(123)``. After Sphinx
has assigned those numbers (``env-get-updated``), this handler renumbers each chapter's labelled
equations ``(N.1), (N.2), ...`` in the order Sphinx counted them, where ``N`` is the chapter's
number from its file name (``ch17_gpt`` -> 17). Pages that are not chapters keep Sphinx's
numbers. Cross-references (``{eq}``) read the same table, so they follow. The Colab export
(``tools/colab_export.py``) numbers the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booktools import chapter_number  # noqa: E402

FIGTYPE = "displaymath"


def renumber(app: Sphinx, env: BuildEnvironment) -> list[str]:
    """Rewrite ``env.toc_fignumbers`` so each chapter's equations count from ``N.1``."""
    changed = []
    for docname, types in env.toc_fignumbers.items():
        chapter = chapter_number(docname)
        numbers = types.get(FIGTYPE)
        if chapter is None or not numbers:
            continue
        in_order = sorted(numbers, key=lambda ident: numbers[ident])
        renumbered = {ident: (chapter, k) for k, ident in enumerate(in_order, 1)}
        if renumbered != numbers:
            types[FIGTYPE] = renumbered
            changed.append(docname)
    return changed


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-get-updated", renumber, priority=900)  # after Sphinx's own numbering (500)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
