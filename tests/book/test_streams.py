"""The myst-nb stream merge no longer leaves repeated lines in the downloadable notebook."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import dlscratch_streams  # noqa: E402


def test_merged_streams_are_written_back_once() -> None:
    from myst_nb.core import render

    dlscratch_streams._patch()
    dlscratch_streams._patch()  # idempotent: wrapping twice would merge twice
    stream = nbformat.v4.new_output
    cell_outputs = [
        stream("stream", name="stdout", text="a\nb\n"),
        stream("stream", name="stdout", text="c\n"),
        stream("display_data", data={"text/plain": "x"}),
        stream("stream", name="stdout", text="d\n"),
    ]
    merged = render.coalesce_streams(cell_outputs)
    assert [o.output_type for o in merged] == ["stream", "display_data"]
    assert merged[0].text == "a\nb\nc\nd\n"
    assert cell_outputs == merged  # what the notebook keeps is what the page shows
