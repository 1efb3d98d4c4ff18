"""Sphinx extension: build the results ledger from the executed chapters.

Chapters record headline numbers with :func:`dlscratch.training.record`, which attaches each one
to its cell output under the MIME type ``application/vnd.dlscratch.result+json``. After Sphinx has
read (and myst-nb executed or restored from its cache) every chapter, this extension reads the
data myst-nb writes to ``_build/jupyter_execute/`` and collects:

* every ledger entry, tagged with the chapter (its ``_toc.yml`` docname): ``record`` tags its
  output as myst-nb "glue" data, which myst-nb extracts from the executed notebook, or from the
  cached one, and writes to ``_build/jupyter_execute/<docname>.glue.json``;
* each chapter's execution seconds (from the run, or from the jupyter-cache record).

It writes them to ``_build/results.json`` and renders them on the page that contains the
``{results-table}`` directive, and the rows of a ``{then-vs-now}`` table (YAML rows of aspect,
then, now, chapter and ledger keys) with the numbers this build measured. A chapter restored from the cache keeps its recorded results,
because myst-nb extracts the glue data from the cached outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from dlscratch.training.ledger import GLUE_PREFIX, parse_output

logger = logging.getLogger(__name__)

_COLUMNS = ("Key (device, preset)", "Measured", "Reference", "Target", "Source")


class results_placeholder(nodes.General, nodes.Element):
    """Replaced by the results table once every chapter has been read."""


class ResultsTableDirective(SphinxDirective):
    """``{results-table}``: the ledger as one table, measured next to reference."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        self.env.dlscratch_results_pages = getattr(self.env, "dlscratch_results_pages", set()) | {
            self.env.docname
        }
        return [results_placeholder()]


class then_now_placeholder(nodes.General, nodes.Element):
    """Replaced by the then-vs-now table once every chapter has been read."""


_ROW_FIELDS = {"aspect", "then", "now", "chapter", "measures"}


class ThenVsNowDirective(SphinxDirective):
    """``{then-vs-now}``: rows (YAML) of what changed since 2017, each with the number measured here.

    Each row has ``aspect``, ``then``, ``now``, ``chapter`` (the chapter number of the plan),
    and ``measures``: a list of ``{key: <ledger key>, label: <text>}``. A row's chapter links
    to the chapter that builds it; a ledger key not recorded in this build shows the chapter
    still to come.
    """

    has_content = True

    def run(self) -> list[nodes.Node]:
        rows = yaml.safe_load("\n".join(self.content)) or []
        if not isinstance(rows, list):
            raise self.error("then-vs-now: the content must be a YAML list of rows")
        for row in rows:
            unknown = set(row) - _ROW_FIELDS
            missing = {"aspect", "then", "now", "chapter"} - set(row)
            if unknown or missing:
                raise self.error(f"then-vs-now row {row.get('aspect')!r}: unknown fields {sorted(unknown)}, missing {sorted(missing)}")
        self.env.dlscratch_results_pages = getattr(self.env, "dlscratch_results_pages", set()) | {self.env.docname}
        node = then_now_placeholder()
        node["rows"] = rows
        return [node]


def _glue_file(app: Sphinx, docname: str) -> Path:
    return Path(app.outdir).parent / "jupyter_execute" / f"{docname}.glue.json"


def collect(app: Sphinx, env: Any) -> list[str]:
    """``env-updated``: gather ledger entries and execution times of every chapter."""
    from myst_nb.sphinx_ import NbMetadataCollector

    chapters: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    meta = NbMetadataCollector.get_doc_data(env)
    for docname in sorted(env.found_docs):
        exec_data = meta.get(docname, {}).get("exec_data")
        if exec_data is None:
            continue
        chapters[docname] = {"seconds": exec_data.get("runtime"), "method": exec_data.get("method")}
        # glue keys of this read of the document (a stale glue file from an older build is ignored)
        names = [n for n in meta[docname].get("glue", []) if n.startswith(GLUE_PREFIX)]
        if not names:
            continue
        glue = json.loads(_glue_file(app, docname).read_text(encoding="utf-8"))
        for name in names:
            entry = parse_output(glue[name])
            if entry is not None:
                results.append({"chapter": docname, **entry})
    keys = [r["key"] for r in results]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        where = sorted({r["chapter"] for r in results if r["key"] == key})
        logger.warning(f"ledger key {key!r} is recorded more than once (in {', '.join(where)})")
    env.dlscratch_ledger = {"chapters": chapters, "results": results}
    out = Path(app.outdir).parent / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(env.dlscratch_ledger, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    for docname, info in chapters.items():
        secs = info["seconds"]
        logger.info(f"[dlscratch] {docname}: {'?' if secs is None else f'{secs:.1f}'} s ({info['method']})")
    # the results page must be rewritten whenever any chapter changed
    return sorted(getattr(env, "dlscratch_results_pages", set()))


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _row(cells: list[nodes.Node | str]) -> nodes.row:
    row = nodes.row()
    for c in cells:
        entry = nodes.entry()
        entry += c if isinstance(c, nodes.Node) else nodes.paragraph(text=c)
        row += entry
    return row


def _table(rows: list[dict[str, Any]]) -> nodes.table:
    table = nodes.table(classes=["dlscratch-results"])
    group = nodes.tgroup(cols=len(_COLUMNS))
    table += group
    for width in (34, 14, 10, 12, 30):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += _row(list(_COLUMNS))
    group += head
    body = nodes.tbody()
    for r in sorted(rows, key=lambda r: r["key"]):
        target = r.get("target")
        met = r.get("met_target")
        tgt = "—" if target is None else f"{'≥' if r.get('higher_is_better') else '≤'} {target:.4g} {'✓' if met else '✗'}"
        body += _row(
            [
                nodes.paragraph(
                    "", "", nodes.literal(text=r["key"]), nodes.Text(f" ({r.get('device')}, {r.get('preset')})")
                ),
                f"{_fmt(r['value'])} {r.get('unit', '')}",
                _fmt(r.get("reference")),
                tgt,
                r.get("source") or "—",
            ]
        )
    group += body
    return table


def _chapter_section(app: Sphinx, fromdoc: str, chapter: str, info: dict[str, Any],
                     rows: list[dict[str, Any]]) -> list[nodes.Node]:
    title = app.env.titles[chapter].astext() if chapter in app.env.titles else chapter
    ref = nodes.reference("", "", internal=True, refuri=app.builder.get_relative_uri(fromdoc, chapter))
    ref += nodes.Text(title)
    secs = info.get("seconds")
    heading = nodes.rubric("", "", ref)
    timing = nodes.paragraph(text=f"Executed in {secs:.1f} s." if secs is not None else "")
    return [heading, timing, _table(rows)]


def render(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """``doctree-resolved``: swap the placeholder for the table."""
    ledger = getattr(app.env, "dlscratch_ledger", {"chapters": {}, "results": []})
    for node in list(doctree.findall(results_placeholder)):
        content: list[nodes.Node] = []
        for chapter, info in sorted(ledger["chapters"].items()):
            rows = [r for r in ledger["results"] if r["chapter"] == chapter]
            if rows:
                content += _chapter_section(app, docname, chapter, info, rows)
        node.replace_self(content or [nodes.paragraph(text="No chapter has recorded a result yet.")])


def _chapter_docs(app: Sphinx) -> dict[int, str]:
    out = {}
    for doc in app.env.found_docs:
        name = doc.rsplit("/", 1)[-1]
        if name.startswith("ch") and name[2:4].isdigit():
            out[int(name[2:4])] = doc
    return out


def _measured(rows: list[dict[str, Any]], measures: list[dict[str, str]]) -> str:
    parts = []
    for m in measures:
        hit = next((r for r in rows if r["key"] == m["key"]), None)
        if hit is not None:
            parts.append(f"{m['label']}: {_fmt(hit['value'])} {hit.get('unit', '')}".rstrip())
    return "; ".join(parts)


def _then_now_table(app: Sphinx, fromdoc: str, spec: list[dict[str, Any]], results: list[dict[str, Any]]) -> nodes.table:
    columns = ("Aspect", "2017 Transformer", "A 2024 LLM", "Built in", "Measured in this build")
    table = nodes.table(classes=["dlscratch-results"])
    group = nodes.tgroup(cols=len(columns))
    table += group
    for width in (14, 22, 22, 14, 28):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    head += _row(list(columns))
    group += head
    body = nodes.tbody()
    docs = _chapter_docs(app)
    for r in spec:
        number = int(r["chapter"])
        doc = docs.get(number)
        if doc is not None:
            ref = nodes.reference("", "", internal=True, refuri=app.builder.get_relative_uri(fromdoc, doc))
            ref += nodes.Text(app.env.titles[doc].astext() if doc in app.env.titles else f"Chapter {number}")
            where: nodes.Node | str = nodes.paragraph("", "", ref)
        else:
            where = f"Chapter {number} (still to come)"
        measured = _measured(results, r.get("measures", [])) or (
            "—" if doc is not None else f"fills in when chapter {number} lands"
        )
        body += _row([nodes.paragraph(text=r["aspect"]), r["then"], r["now"], where, measured])
    group += body
    return table


def render_then_now(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """``doctree-resolved``: swap each then-vs-now placeholder for its table."""
    ledger = getattr(app.env, "dlscratch_ledger", {"chapters": {}, "results": []})
    for node in list(doctree.findall(then_now_placeholder)):
        node.replace_self(_then_now_table(app, docname, node["rows"], ledger["results"]))


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_node(results_placeholder)
    app.add_node(then_now_placeholder)
    app.add_directive("results-table", ResultsTableDirective)
    app.add_directive("then-vs-now", ThenVsNowDirective)
    app.connect("doctree-resolved", render_then_now)
    app.connect("env-updated", collect)
    app.connect("doctree-resolved", render)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
