"""The site check refuses a figure with transparency (it would vanish on the dark theme)."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from check_site import _figure_problem  # noqa: E402

from dlscratch.viz import use_book_style


def test_book_style_figures_are_opaque_and_transparent_ones_are_refused(tmp_path: Path) -> None:
    use_book_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "card.png")
    fig.savefig(tmp_path / "glass.png", transparent=True)
    plt.close(fig)
    assert _figure_problem(tmp_path / "card.png") is None
    assert "transparent" in (_figure_problem(tmp_path / "glass.png") or "")
