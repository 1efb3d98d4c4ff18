"""references.bib is well formed: every entry closes before the next opens, and keys are unique.

A merge that drops one closing brace makes Sphinx swallow the following entries silently; this
catches it at test time.
"""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from booktools import ROOT  # noqa: E402

BIB = ROOT / "book" / "references.bib"


def test_every_entry_is_closed_and_every_key_unique() -> None:
    text = BIB.read_text(encoding="utf-8")
    depth = 0
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("@"):
            assert depth == 0, f"references.bib line {n}: an entry starts before the previous one is closed"
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"references.bib line {n}: a closing brace without an opening one"
    assert depth == 0, "references.bib ends inside an entry"
    keys = re.findall(r"^@\w+\{([^,\s]+),", text, flags=re.M)
    repeated = [k for k, c in collections.Counter(keys).items() if c > 1]
    assert keys and not repeated, f"repeated keys: {repeated}"
