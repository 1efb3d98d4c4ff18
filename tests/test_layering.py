"""The package's import layering: each subpackage imports only the layers below it, with no cycles.

Read from the source with ``ast`` (every ``import``, also inside functions), so the test sees an
import that only runs later, such as one placed in a method to dodge a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dlscratch"

# what each subpackage may import from dlscratch, besides itself (``utils`` is a leaf: device, seeding)
ALLOWED: dict[str, set[str]] = {
    "utils": set(),
    "viz": {"utils"},
    "autograd": {"utils"},
    "layers": set(),
    "tokenizers": set(),
    "optimizers": set(),
    "data": {"tokenizers", "utils"},
    "models": {"layers", "tokenizers", "utils"},
    "training": {"models", "layers", "tokenizers", "optimizers", "data", "utils"},
    "exercises": {"utils", "viz", "autograd", "layers", "tokenizers", "optimizers", "data", "models", "training"},
    "cli": {"utils", "layers", "tokenizers", "optimizers", "data", "models", "training"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    r"""The ``dlscratch`` modules that ``path`` imports, resolved to absolute dotted names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "dlscratch"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "dlscratch":
                continue
            found.add(mod)
            for a in node.names:  # ``from .pkg import module`` imports the module too
                sub = SRC.parent.joinpath(*f"{mod}.{a.name}".split("."))
                if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                    found.add(f"{mod}.{a.name}")
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {m: {i for i in _imports(p) if i in files and i != m} for m, p in files.items()}


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_subpackages_import_only_the_layers_below() -> None:
    bad = []
    for mod, deps in sorted(_graph().items()):
        own = _subpackage(mod)
        if own not in ALLOWED:
            continue
        for dep in sorted(deps):
            other = _subpackage(dep)
            if other and other != own and other not in ALLOWED[own]:
                bad.append(f"{mod} imports {dep} ({own} may import only {sorted(ALLOWED[own]) or 'itself'})")
    assert not bad, "layering violations:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = _graph()
    # package __init__ files re-export their children; an edge child -> parent package is fine
    # only when the child does not import its own __init__ (checked as an ordinary edge)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if m.startswith(d + ".") or d.startswith(m + "."):
                continue  # a package and its own submodules
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_every_subpackage_is_listed(package: str) -> None:
    assert (SRC / package).is_dir() or (SRC / f"{package}.py").exists(), f"{package} is not in src/dlscratch"
