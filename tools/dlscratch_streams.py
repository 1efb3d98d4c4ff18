"""Sphinx extension: keep the downloadable notebooks free of repeated printed lines.

With ``nb_merge_streams`` on, myst-nb merges a cell's stream outputs before rendering them, but it
does so *in place*: the first stream output's text grows to hold all of them, while the others
stay in the notebook. The executed notebook it then writes (``_build/jupyter_execute``, offered
as the page's ``.ipynb`` download) shows the later lines twice. This wrapper merges a copy and
puts the merged outputs back in the cell's list, so the page and its notebook show the same,
once.
"""

from __future__ import annotations

import copy
from typing import Any

from sphinx.application import Sphinx


def _patch() -> None:
    from myst_nb.core import render

    if getattr(render.coalesce_streams, "_dlscratch", False):
        return
    original = render.coalesce_streams

    def coalesce_streams(outputs: list[Any]) -> list[Any]:
        merged = original(copy.deepcopy(outputs))  # the cell's own outputs are not mutated
        outputs[:] = copy.deepcopy(merged)  # the written notebook shows what the page shows
        return merged

    coalesce_streams._dlscratch = True  # type: ignore[attr-defined]
    render.coalesce_streams = coalesce_streams


def setup(app: Sphinx) -> dict[str, Any]:
    _patch()
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
