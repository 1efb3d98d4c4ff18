"""Export every chapter to a Colab-ready notebook next to its ``.md`` source.

Colab cannot open MyST Markdown, and sphinx-book-theme links its Colab button to ``X.ipynb``
only when that file sits next to ``X.md`` at build time. This script writes those notebooks:

* the first cell is the install cell rendered from ``_config.yml`` (it runs only in Colab), pinned
  to the commit the notebook is exported from (``git+URL@<HEAD>``), so the package a Colab reader
  installs is the one the notebook was built against;
* MyST-only syntax becomes Markdown that Colab renders: ``{math}`` blocks with labels become
  ``$$ ... \\tag{n}$$``, ``{eq}`` references become ``(n)``, ``{cite}`` becomes author-year text,
  ``{literalinclude}`` becomes the included code, admonitions become block quotes;
* no outputs are kept.

Usage: ``python tools/colab_export.py [--check]`` (``--check`` fails when a chapter uses a
construct the exporter cannot rewrite, without writing files). An unknown directive, directive
option or role is an error, never silently dropped.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
import tempfile
from functools import cache
from pathlib import Path

import jupytext
import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booktools import ROOT, chapter_number, chapter_paths, config, head_commit, setup_cell_source  # noqa: E402

FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")
ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<text>[^`]*)`")
# a role, or an inline code span (left alone: `\p{L}` is code, not a role), scanned left to right
ROLE_OR_CODE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<text>[^`]*)`|(?P<code>`+)(?P<body>.*?)(?P=code)")
TARGET = re.compile(r"^\(\s*[\w.-]+\s*\)=\s*$")
DOLLAR_LABEL = re.compile(r"^\$\$\s*\((?P<label>[\w.-]+)\)\s*$")

ADMONITIONS = {
    "note": "Note",
    "tip": "Tip",
    "important": "Important",
    "warning": "Warning",
    "caution": "Caution",
    "attention": "Attention",
    "hint": "Hint",
    "danger": "Danger",
    "error": "Error",
    "seealso": "See also",
}


# the options each directive's rewrite honours; any other option is an error, never silently dropped
KNOWN_OPTIONS: dict[str, frozenset[str]] = {
    "math": frozenset({"label"}),
    "literalinclude": frozenset({"pyobject", "language", "lines"}),
}


class ExportError(ValueError):
    """A chapter uses MyST syntax this exporter cannot rewrite for Colab."""


@cache
def bibliography() -> dict[str, str]:
    """Citation key -> "Author et al., Year" from the book's BibTeX files."""
    from pybtex.database import parse_file

    out: dict[str, str] = {}
    for bib in config().get("bibtex_bibfiles", []):
        data = parse_file(str(ROOT / bib))
        for key, entry in data.entries.items():
            people = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in people]
            if not names:
                who = entry.fields.get("title", key).strip("{}")
            elif len(names) == 1:
                who = names[0]
            elif len(names) == 2:
                who = f"{names[0]} and {names[1]}"
            else:
                who = f"{names[0]} et al."
            out[key] = f"{who}, {entry.fields.get('year', 'n.d.')}"
    return out


def _pyobject_source(path: Path, qualname: str) -> str:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    scope: list[ast.stmt] = tree.body
    node: ast.AST | None = None
    for part in qualname.split("."):
        node = next(
            (n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part),
            None,
        )
        if node is None:
            raise ExportError(f"{path}: no object {qualname!r} for literalinclude")
        scope = node.body  # type: ignore[attr-defined]
    lines = source.splitlines()
    start = min([node.lineno] + [d.lineno for d in node.decorator_list])  # type: ignore[union-attr]
    return "\n".join(lines[start - 1 : node.end_lineno])  # type: ignore[union-attr]


def _literalinclude(md_path: Path, arg: str, options: dict[str, str]) -> list[str]:
    path = (md_path.parent / arg.strip()).resolve()
    if not path.is_file():
        raise ExportError(f"{md_path}: literalinclude of a missing file {arg!r}")
    if "pyobject" in options:
        code = _pyobject_source(path, options["pyobject"])
    else:
        code = path.read_text(encoding="utf-8").rstrip("\n")
        if "lines" in options:
            picked: list[str] = []
            all_lines = code.splitlines()
            for span in options["lines"].split(","):
                a, _, b = span.strip().partition("-")
                lo, hi = int(a), int(b) if b else int(a)
                picked.extend(all_lines[lo - 1 : hi])
            code = "\n".join(picked)
    rel = os.path.relpath(path, ROOT)
    lang = options.get("language", "python")
    return [f"From `{rel}`:", "", f"```{lang}", *code.splitlines(), "```"]


class Converter:
    """Rewrites the Markdown cells of one chapter; equation numbers run over the whole chapter.

    In a chapter file (``chNN_*.md``) equation ``k`` is numbered ``NN.k``, as on the site.
    """

    def __init__(self, md_path: Path) -> None:
        self.md_path = md_path
        self.equations: dict[str, str] = {}
        chapter = chapter_number(md_path)
        self._prefix = f"{chapter}." if chapter is not None else ""

    def _next_number(self) -> str:
        return f"{self._prefix}{len(self.equations) + 1}"

    # --- pass 1: number the labelled equations in order of appearance
    def number_equations(self, cells: list[str]) -> None:
        for text in cells:
            lines = text.splitlines()
            for i, line in enumerate(lines):
                m = FENCE.match(line.strip())  # a directive may be indented (inside a list item)
                if m and m.group("name") == "math":
                    for opt in lines[i + 1 :]:
                        o = OPTION.match(opt.strip())
                        if not o:
                            break
                        if o.group("key") == "label":
                            self.equations[o.group("value").strip()] = self._next_number()
                d = DOLLAR_LABEL.match(line.strip()) if line.strip().startswith("$$") else None
                if d:
                    self.equations[d.group("label")] = self._next_number()

    # --- pass 2: rewrite
    def convert(self, text: str) -> str:
        return "\n".join(self._block(text.splitlines()))

    def _block(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            m = FENCE.match(line.strip())
            if m:
                fence, name, arg = m.group("fence"), m.group("name"), m.group("arg")
                i += 1
                options: dict[str, str] = {}
                while i < len(lines) and OPTION.match(lines[i].strip()):
                    o = OPTION.match(lines[i].strip())
                    assert o is not None
                    options[o.group("key")] = o.group("value").strip()
                    i += 1
                body: list[str] = []
                close = re.compile(rf"^{re.escape(fence[0])}{{{len(fence)},}}\s*$")
                while i < len(lines) and not close.match(lines[i].strip()):
                    body.append(lines[i])
                    i += 1
                if i >= len(lines):
                    raise ExportError(f"{self.md_path}: unclosed {{{name}}} block")
                i += 1  # the closing fence
                indent = line[: len(line) - len(line.lstrip())]  # keep a list item's indentation
                out.extend(indent + x if x else x for x in self._directive(name, arg, options, body))
                continue
            if TARGET.match(line.strip()):
                i += 1
                continue
            d = DOLLAR_LABEL.match(line.strip())
            if d:  # "$$ (label)" closing a labelled dollar block
                out.append(f"\\tag{{{self.equations[d.group('label')]}}}$$")
                i += 1
                continue
            out.append(self._roles(line))
            i += 1
        return out

    def _directive(self, name: str, arg: str, options: dict[str, str], body: list[str]) -> list[str]:
        unknown = sorted(set(options) - KNOWN_OPTIONS.get(name, frozenset()))
        if unknown:
            raise ExportError(f"{self.md_path}: the Colab exporter does not know the option(s) {unknown} of {{{name}}}")
        if name == "math":
            math = "\n".join(b for b in body if b.strip())
            tag = f" \\tag{{{self.equations[options['label']]}}}" if "label" in options else ""
            if "\\\\" in math and "\\begin" not in math:
                math = f"\\begin{{aligned}}\n{math}\n\\end{{aligned}}"
            return ["$$", math + tag, "$$"]
        if name == "literalinclude":
            return _literalinclude(self.md_path, arg, options)
        if name in ADMONITIONS or name == "admonition":
            title = arg.strip() if name == "admonition" else ADMONITIONS[name]
            inner = self._block(body)
            quoted = [f"> **{self._roles(title)}.**" if title else ">", ">"]
            quoted += [f"> {x}" if x.strip() else ">" for x in inner]
            return quoted
        if name == "dropdown":  # sphinx-design's collapsed block (worked solutions): HTML <details> in Jupyter
            inner = self._block(body)
            return [f"<details><summary>{self._roles(arg.strip()) or 'Show'}</summary>", "", *inner, "", "</details>"]
        if name == "bibliography":
            return []
        if name == "code-block" or name == "code":
            return [f"```{arg.strip() or 'python'}", *body, "```"]
        raise ExportError(f"{self.md_path}: the Colab exporter does not know the {{{name}}} directive")

    def _roles(self, line: str) -> str:
        def sub(m: re.Match[str]) -> str:
            if m.group("code"):
                return m.group(0)
            role, text = m.group("role"), m.group("text")
            if role == "eq":
                label = text.strip()
                if label not in self.equations:
                    raise ExportError(f"{self.md_path}: {{eq}} refers to an unknown label {label!r}")
                return f"({self.equations[label]})"
            if role.startswith("cite"):
                keys = [k.strip() for k in text.split(",")]
                bib = bibliography()
                missing = [k for k in keys if k not in bib]
                if missing:
                    raise ExportError(f"{self.md_path}: unknown citation key(s) {missing}")
                return "(" + "; ".join(bib[k] for k in keys) + ")"
            if role in {"ref", "doc", "numref", "term"}:
                shown = re.match(r"^(.*?)\s*<[^>]+>$", text)
                return shown.group(1) if shown else text
            if role in {"math"}:
                return f"${text}$"
            if role.startswith("py:"):  # {py:func}`torch.softmax` and the like: the name, as code
                return f"`{text}`"
            raise ExportError(f"{self.md_path}: the Colab exporter does not know the {{{role}}} role")

        return ROLE_OR_CODE.sub(sub, line)


def export_chapter(md_path: Path, ref: str | None = None) -> nbformat.NotebookNode:
    """Convert one MyST chapter to a Colab-ready notebook (not written); its install cell pins ``ref``."""
    nb = jupytext.read(md_path)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    if not code_cells or code_cells[0].source.strip() != setup_cell_source():
        raise ExportError(f"{md_path}: the first code cell must be the Colab setup cell (see tools/booktools.py)")
    conv = Converter(md_path)
    conv.number_equations([c.source for c in nb.cells if c.cell_type == "markdown"])
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = conv.convert(cell.source)
        elif cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    code_cells[0].source = setup_cell_source(ref)
    nb.metadata.pop("jupytext", None)
    nb.metadata["colab"] = {"provenance": [], "name": md_path.with_suffix(".ipynb").name}
    nbformat.validate(nb)
    return nb


def write_atomic(nb: nbformat.NotebookNode, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        nbformat.write(nb, fh)
    os.replace(tmp, dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="convert but do not write")
    parser.add_argument("--ref", default=None,
                        help="commit the install cell pins (default: this checkout's HEAD; 'none' for the default branch)")
    args = parser.parse_args(argv)
    ref = None if args.ref == "none" else (args.ref or head_commit())
    for md in chapter_paths():
        nb = export_chapter(md, ref)
        if not args.check:
            write_atomic(nb, md.with_suffix(".ipynb"))
        print(f"{'checked' if args.check else 'exported'} {md.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
