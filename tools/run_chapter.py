"""Execute one chapter top to bottom, without the cache or the site, and report its time.

Usage: ``python tools/run_chapter.py book/<part>/<chapter>.md [--out executed.ipynb]``.
Cells run in the chapter's folder, as in the book build; the first failing cell stops the run
with its traceback.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jupytext
import nbclient
import nbformat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="write the executed notebook here")
    args = parser.parse_args()
    if not args.chapter.is_file():
        parser.error(f"no such chapter: {args.chapter}")
    nb = jupytext.read(args.chapter)
    start = time.perf_counter()
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(args.chapter.parent)}}
    ).execute()
    secs = time.perf_counter() - start
    if args.out:
        nbformat.write(nb, args.out)
    print(f"executed {args.chapter} in {secs:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
