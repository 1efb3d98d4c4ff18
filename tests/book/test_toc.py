"""Every table-of-contents entry exists; every chapter is an executable, Colab-ready notebook."""

from __future__ import annotations

import re

import jupytext
import pytest
from booktools import ROOT, chapter_paths, repo_url, setup_cell_source, toc_docnames

CHAPTER = re.compile(r"^book/part\d+_[a-z_]+/ch\d\d_[a-z0-9_]+$")


def test_every_toc_entry_exists() -> None:
    missing = [d for d in toc_docnames() if not (ROOT / f"{d}.md").is_file()]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


@pytest.mark.parametrize("docname", [d for d in toc_docnames() if CHAPTER.match(d)])
def test_chapter_is_executable_notebook(docname: str) -> None:
    path = ROOT / f"{docname}.md"
    assert path in chapter_paths(), f"{docname}.md lacks the jupytext header (format_name: myst) or kernelspec"
    nb = jupytext.read(path)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source.strip() == setup_cell_source(), f"{docname}: first code cell is not the Colab setup cell"
    assert "remove-cell" in first.metadata.get("tags", []), f"{docname}: the Colab cell must be hidden (remove-cell)"
    text = path.read_text(encoding="utf-8")
    assert "## Exercises" in text and text.count('check("') >= 3, f"{docname}: needs at least three checked exercises"
    assert "{cite" in text, f"{docname}: cites nothing"
    assert ":label:" in text and "{eq}" in text, f"{docname}: needs labelled, referenced equations"


def test_chapter_files_follow_the_plan_layout() -> None:
    chapters = [d for d in toc_docnames() if d.startswith("book/part")]
    assert chapters and all(CHAPTER.match(d) for d in chapters), chapters
    numbers = [int(re.search(r"/ch(\d\d)_", d).group(1)) for d in chapters]  # type: ignore[union-attr]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_repository_url_lives_in_config() -> None:
    url = repo_url()
    assert url.startswith("https://github.com/") and url.count("/") == 4
    assert f"git+{url}" in setup_cell_source()


def test_equation_labels_are_unique_across_the_book() -> None:
    """Sphinx resolves equation labels book-wide: a label used in two chapters is a build warning."""
    seen: dict[str, str] = {}
    clashes = []
    for md in chapter_paths():
        for label in re.findall(r"^\s*:label:\s*(\S+)\s*$", md.read_text(encoding="utf-8"), flags=re.M):
            if label in seen and seen[label] != md.stem:
                clashes.append(f"{label}: {seen[label]} and {md.stem}")
            seen.setdefault(label, md.stem)
    assert not clashes, clashes


def test_references_extra_pins_match_requirements() -> None:
    """The Colab setup cell installs ``dlscratch[references]``; its pins are the build's own."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = ROOT
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["references"]
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (root / "requirements.txt").read_text(), re.M))
    for req in extra:
        name, version = req.split("==")
        assert pins.get(name) == version, f"{req} in pyproject.toml, {name}=={pins.get(name)} in requirements.txt"
