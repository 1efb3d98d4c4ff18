"""Invalidate the execution cache when the package or the environment changes.

jupyter-cache keys an executed notebook on its code cells only, so editing ``src/dlscratch``
would not re-execute the chapters that import it. Before each build this script hashes
``src/``, ``requirements.txt`` and ``pyproject.toml`` and empties ``_build/.jupyter_cache`` when
the hash differs from the one stored by the previous build. (The GitHub Actions workflow keys its
cache on the same files.)
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booktools import ROOT  # noqa: E402

CACHE = ROOT / "_build" / ".jupyter_cache"
STAMP = ROOT / "_build" / ".dlscratch-src-hash"


def source_hash() -> str:
    h = hashlib.sha256()
    files = sorted((ROOT / "src").rglob("*.py")) + [ROOT / "requirements.txt", ROOT / "pyproject.toml"]
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def main() -> int:
    digest = source_hash()
    old = STAMP.read_text().strip() if STAMP.is_file() else None
    if old != digest:
        if CACHE.exists():
            shutil.rmtree(CACHE)
            print("src/ or the environment changed: cleared the execution cache, every chapter runs again")
        STAMP.parent.mkdir(parents=True, exist_ok=True)
        STAMP.write_text(digest + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
