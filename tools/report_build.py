"""After ``jupyter-book build``: print each chapter's execution time and the ledger.

Checks that ``_build/results.json`` has the documented shape and covers every executed chapter
of the table of contents; exits non-zero when it does not. Speed is reported, not asserted: a
chapter over the 90 s budget is flagged in the printout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booktools import ROOT, chapter_paths  # noqa: E402

BUDGET_S = 90.0
RESULT_FIELDS = {"key", "value", "unit", "chapter", "device", "preset", "reference", "source"}


def main() -> int:
    path = ROOT / "_build" / "results.json"
    if not path.is_file():
        print(f"{path} is missing: did the build run the dlscratch_results extension?", file=sys.stderr)
        return 1
    ledger = json.loads(path.read_text(encoding="utf-8"))
    errors: list[str] = []
    chapters = ledger.get("chapters", {})
    expected = [str(p.relative_to(ROOT).with_suffix("")) for p in chapter_paths()]
    print("chapter execution times (budget 90 s each on the 2-core CPU):")
    total = 0.0
    for doc in expected:
        info = chapters.get(doc)
        if info is None or info.get("seconds") is None:
            errors.append(f"no execution record for {doc}")
            continue
        secs = float(info["seconds"])
        total += secs
        flag = "  OVER BUDGET" if secs > BUDGET_S else ""
        print(f"  {secs:7.1f} s  {doc}{flag}")
    print(f"  {total:7.1f} s  total")
    results = ledger.get("results", [])
    print(f"\nresults ledger ({len(results)} entries):")
    for r in results:
        missing = RESULT_FIELDS - r.keys()
        if missing:
            errors.append(f"ledger entry {r.get('key')!r} lacks {sorted(missing)}")
            continue
        ref = "—" if r["reference"] is None else f"{r['reference']:.4g}"
        met = {True: "✓", False: "✗", None: ""}[r.get("met_target")]
        print(f"  {r['key']:<40} {r['value']:>12.5g} {r['unit']:<10} ref {ref:<10} {met} [{r['device']}/{r['preset']}]")
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
