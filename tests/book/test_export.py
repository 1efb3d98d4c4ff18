"""The Colab export: valid notebooks, MyST rewritten into Markdown that Colab renders."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat
import pytest
from booktools import ROOT, chapter_paths, head_commit, repo_url, setup_cell_source
from colab_export import ROLE_OR_CODE, Converter, ExportError, export_chapter

MYST_FENCE = re.compile(r"^\s*(```|:::)\{", re.M)
CODE_BLOCK = re.compile(r"^```[\w-]*\n.*?^```$", re.M | re.S)  # included code may hold reST roles


@pytest.mark.parametrize("md", chapter_paths(), ids=lambda p: p.stem)
def test_exported_chapter_is_valid_and_plain(md: Path) -> None:
    nb = export_chapter(md)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].source == setup_cell_source()
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            prose = CODE_BLOCK.sub("", cell.source)
            roles = [m.group(0) for m in ROLE_OR_CODE.finditer(prose) if m.group("role")]  # not inside `code`
            assert not roles and not MYST_FENCE.search(prose), f"MyST syntax left in {md.name}: {roles}\n{prose[:400]}"


def test_exported_install_cell_pins_the_commit() -> None:
    md = chapter_paths()[0]
    ref = "0123456789abcdef0123456789abcdef01234567"
    first = next(c for c in export_chapter(md, ref).cells if c.cell_type == "code")
    assert first.source == setup_cell_source(ref)
    assert first.source.endswith(f'git+{repo_url()}@{ref}"')
    head = head_commit()
    assert head is None or re.fullmatch(r"[0-9a-f]{40}", head)


def _convert(text: str, tmp_path: Path) -> str:
    conv = Converter(tmp_path / "book" / "x" / "ch.md")
    conv.number_equations([text])
    return conv.convert(text)


def test_math_labels_and_references(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        ```{math}
        :label: eq-a
        a = b
        ```

        and

        ```{math}
        :label: eq-b
        x &= 1 \\\\
        y &= 2
        ```

        By {eq}`eq-b` and {eq}`eq-a`, done.
        """
    )
    out = _convert(text, tmp_path)
    assert "a = b \\tag{1}" in out
    assert "\\begin{aligned}" in out and "\\tag{2}" in out
    assert "By (2) and (1), done." in out


def test_admonition_and_roles(tmp_path: Path) -> None:
    text = "```{note}\nSoftmax is $\\exp$ normalised, see {cite}`vaswani2017attention`.\n```\n(sec-x)=\nUse {py:func}`torch.softmax`."
    out = _convert(text, tmp_path)
    assert out.startswith("> **Note.**")
    assert "> Softmax is $\\exp$ normalised, see (Vaswani et al., 2017)." in out
    assert "(sec-x)=" not in out and "Use `torch.softmax`." in out


def test_literalinclude_pyobject(tmp_path: Path) -> None:
    conv = Converter(ROOT / "book" / "part1_foundations" / "ch.md")
    out = conv.convert("```{literalinclude} ../../src/dlscratch/utils.py\n:language: python\n:pyobject: pick_preset\n```")
    assert "```python" in out and "def pick_preset(" in out and "return gpu if" in out
    assert "def device(" not in out


def test_unknown_constructs_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="glue"):
        _convert("```{glue} x\n```", tmp_path)
    with pytest.raises(ExportError, match="eq-missing"):
        _convert("see {eq}`eq-missing`", tmp_path)
    with pytest.raises(ExportError, match="nokey"):
        _convert("{cite}`nokey`", tmp_path)
    with pytest.raises(ExportError, match="unclosed"):
        _convert("```{note}\nnever closed", tmp_path)
    with pytest.raises(ExportError, match="abbr"):  # an unknown role is not silently turned into code
        _convert("an {abbr}`LM (language model)`", tmp_path)
    with pytest.raises(ExportError, match=r"\['open'\].*dropdown"):  # nor an option silently dropped
        _convert("```{dropdown} Solution\n:open:\nx\n```", tmp_path)
    with pytest.raises(ExportError, match="emphasize-lines"):
        _convert("```{literalinclude} ../../src/dlscratch/utils.py\n:emphasize-lines: 2\n```", tmp_path)


def test_braces_inside_inline_code_are_not_roles(tmp_path: Path) -> None:
    out = _convert("the classes `\\p{L}` and `\\p{N}` of `regex`, see {eq}`eq-x`\n$$ (eq-x)", tmp_path)
    assert "`\\p{L}` and `\\p{N}` of `regex`, see (1)" in out


def test_dropdown_becomes_details(tmp_path: Path) -> None:
    out = _convert("```{dropdown} Solution\nUse $x^2$, as in {cite}`vaswani2017attention`.\n```", tmp_path)
    assert out.startswith("<details><summary>Solution</summary>")
    assert "Use $x^2$, as in (Vaswani et al., 2017)." in out and out.rstrip().endswith("</details>")


def test_equations_are_numbered_per_chapter(tmp_path: Path) -> None:
    text = "```{math}\n:label: eq-a\na = b\n```\n\n```{math}\n:label: eq-b\nb = c\n```\n\nBy {eq}`eq-b`.\n"
    conv = Converter(tmp_path / "book" / "part4" / "ch17_gpt.md")
    conv.number_equations([text])
    out = conv.convert(text)
    assert "\\tag{17.1}" in out and "\\tag{17.2}" in out and "By (17.2)." in out


def test_site_equations_are_renumbered_per_chapter() -> None:
    import dlscratch_equations

    class Env:
        toc_fignumbers = {
            "book/part4_transformer/ch17_gpt": {"displaymath": {"eq-x": (124,), "eq-w": (123,)}, "figure": {"f": (9,)}},
            "book/intro": {"displaymath": {"eq-i": (1,)}},
        }

    env = Env()
    changed = dlscratch_equations.renumber(None, env)  # type: ignore[arg-type]
    assert changed == ["book/part4_transformer/ch17_gpt"]
    assert env.toc_fignumbers["book/part4_transformer/ch17_gpt"]["displaymath"] == {"eq-w": (17, 1), "eq-x": (17, 2)}
    assert env.toc_fignumbers["book/part4_transformer/ch17_gpt"]["figure"] == {"f": (9,)}
    assert env.toc_fignumbers["book/intro"]["displaymath"] == {"eq-i": (1,)}


def test_an_indented_directive_inside_a_list_item_is_numbered_and_kept_in_the_item(tmp_path: Path) -> None:
    text = "1. **Item.** Text:\n\n   ```{math}\n   :label: eq-in\n   a = b\n   ```\n\n   See {eq}`eq-in`.\n"
    conv = Converter(tmp_path / "book" / "x" / "ch27_x.md")
    conv.number_equations([text])
    out = conv.convert(text)
    assert "   $$" in out and "a = b \\tag{27.1}" in out and "See (27.1)." in out
