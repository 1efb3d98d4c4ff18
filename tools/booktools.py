"""Shared helpers for the build tools: the book's configuration, its chapters, the Colab cell.

The repository URL lives in ``_config.yml`` only; everything here derives from it.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent

JUPYTEXT_KEYS = ("format_name: myst", "kernelspec:")


@cache
def config() -> dict[str, Any]:
    """The parsed ``_config.yml``."""
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def repo_url() -> str:
    """The repository URL, e.g. ``https://github.com/owner/name`` (no trailing slash)."""
    return str(config()["repository"]["url"]).rstrip("/")


def colab_branch() -> str:
    """The branch the Colab buttons open (where CI publishes the exported notebooks)."""
    return str(config()["repository"].get("branch", "main"))


def setup_cell_source(ref: str | None = None) -> str:
    """The exact source of every chapter's first (hidden) code cell.

    It installs the package with its ``references`` extra: the reference libraries some chapters
    compare against that Colab does not preinstall (trl, diffusers, rank-bm25).

    The chapters' sources install the repository's default branch; an exported notebook passes
    ``ref``, the commit it was exported from, so a reader opening it in Colab installs exactly the
    package that its text and code were written against (``git+URL@<commit>``).
    """
    pin = f"@{ref}" if ref else ""
    return (
        "# Colab setup: in Google Colab, install this book's package (elsewhere this cell does nothing).\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet "dlscratch[references] @ git+{repo_url()}{pin}"'
    )


def head_commit() -> str | None:
    """The full hash of this checkout's ``HEAD``, or ``None`` outside a git checkout."""
    run = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "HEAD"], capture_output=True, text=True)
    ref = run.stdout.strip()
    return ref if run.returncode == 0 and len(ref) == 40 else None


def chapter_number(docname: str | Path) -> int | None:
    """The chapter number of a chapter's docname or path (``.../ch17_gpt`` -> 17), else ``None``.

    Equations are numbered per chapter, ``(17.3)``, on the site and in the Colab notebooks alike.
    """
    m = re.match(r"ch(\d+)_", Path(docname).name)
    return int(m.group(1)) if m else None


def toc_docnames() -> list[str]:
    """Every docname listed in ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names: list[str] = [toc["root"]]

    def walk(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            for key in ("chapters", "sections"):
                if key in entry:
                    walk(entry[key])

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    return names


def is_notebook(path: Path) -> bool:
    """Whether a ``.md`` file is a MyST notebook (jupytext header and kernelspec)."""
    head = path.read_text(encoding="utf-8").split("\n---", 2)[0]
    return path.read_text(encoding="utf-8").startswith("---") and all(k in head for k in JUPYTEXT_KEYS)


def chapter_paths() -> list[Path]:
    """The ``.md`` notebooks of the table of contents (the executed chapters)."""
    paths = [ROOT / f"{name}.md" for name in toc_docnames()]
    return [p for p in paths if p.is_file() and is_notebook(p)]
