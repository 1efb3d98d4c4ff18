r"""One matplotlib style for the whole book.

Figures are drawn on an opaque white card with dark text, so they stay readable on both the
light and the dark theme of the website (a transparent figure with black labels disappears on
a dark page).
"""

from __future__ import annotations

import matplotlib as mpl

__all__ = ["use_book_style", "PALETTE"]

# colour-blind-safe palette (Okabe & Ito)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def use_book_style() -> None:
    r"""Apply the book's matplotlib defaults (white card, readable sizes, palette, tight layout)."""
    mpl.rcParams.update(
        {
            "figure.facecolor": "white",
            "axes.facecolor": "white",
            "savefig.facecolor": "white",
            "figure.dpi": 110,
            "figure.figsize": (6.4, 3.8),
            "figure.autolayout": True,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
            "font.size": 10,
            "axes.titlesize": 11,
            "text.color": "#222222",
            "axes.labelcolor": "#222222",
            "xtick.color": "#222222",
            "ytick.color": "#222222",
        }
    )
