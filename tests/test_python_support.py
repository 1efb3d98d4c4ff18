"""The package runs on the oldest Python that pyproject.toml allows (``requires-python >= 3.10``).

Two checks on every source file, without needing a Python 3.10 interpreter: it parses under the
3.10 grammar (no ``except*``, no ``type`` statements or ``def f[T]`` generics), and it imports no
name that only exists in a later standard library (``typing.Self``, ``tomllib``, ``enum.StrEnum``...).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "src" / "dlscratch").rglob("*.py"))
MIN_PYTHON = (3, 10)

NEW_MODULES = {"tomllib", "wsgiref.types"}  # added in 3.11
NEW_NAMES = {  # module -> names added after 3.10
    "typing": {
        "Self", "LiteralString", "Never", "assert_never", "assert_type", "reveal_type", "Required", "NotRequired",
        "TypeVarTuple", "Unpack", "dataclass_transform", "get_overloads", "clear_overloads", "override",
        "TypeAliasType", "get_protocol_members", "is_protocol", "ReadOnly", "TypeIs", "NoDefault",
    },
    "enum": {"StrEnum", "ReprEnum", "EnumCheck", "FlagBoundary", "verify", "member", "nonmember", "global_enum", "show_flag_values"},
    "asyncio": {"TaskGroup", "Runner", "timeout", "timeout_at", "Timeout", "Barrier"},
    "datetime": {"UTC"},
    "itertools": {"batched"},
    "contextlib": {"chdir"},
    "operator": {"call"},
    "hashlib": {"file_digest"},
    "functools": set(),
}


def test_pyproject_states_the_supported_minimum() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'requires-python\s*=\s*">=3\.10"', text), "update MIN_PYTHON with requires-python"


def _late_names(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in NEW_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module in NEW_MODULES:
                found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names if a.name in NEW_NAMES.get(node.module, ())]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in NEW_NAMES.get(node.value.id, ()):  # e.g. typing.Self after `import typing`
                found.append(f"{node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT / "src")))
def test_source_parses_under_python_3_10_and_imports_nothing_newer(path: Path) -> None:
    src = path.read_text(encoding="utf-8")
    tree = ast.parse(src, filename=str(path), feature_version=MIN_PYTHON)
    assert _late_names(tree) == [], f"{path.name} uses names newer than Python {MIN_PYTHON}"


def test_the_checks_catch_what_they_look_for() -> None:
    with pytest.raises(SyntaxError):
        ast.parse("try:\n    pass\nexcept* ValueError:\n    pass\n", feature_version=MIN_PYTHON)
    bad = "from typing import Self, TypeVar\nimport tomllib\nimport enum\nclass A(enum.StrEnum): pass\n"
    assert _late_names(ast.parse(bad)) == ["typing.Self", "tomllib", "enum.StrEnum"]
    assert SOURCES, "no source files found"
