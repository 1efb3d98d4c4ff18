"""Vendor MathJax 3 from the npm registry into ``_static/mathjax`` so pages render math offline.

The tarball is checked against a pinned SHA-256, unpacked through a temporary folder and moved
into place, so an interrupted download never leaves a half-written copy. Idempotent: does
nothing when the pinned version is already there.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

VERSION = "3.2.2"
URL = f"https://registry.npmjs.org/mathjax/-/mathjax-{VERSION}.tgz"
SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
# what tex-chtml.js needs at run time (its fonts, lazily loaded TeX extensions, menu, a11y)
KEEP = ("tex-chtml.js", "input", "output", "ui", "a11y", "adaptors", "sre")

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / "_static" / "mathjax"


def main() -> int:
    stamp = DEST / "VERSION"
    if stamp.is_file() and stamp.read_text().strip() == VERSION:
        return 0
    try:
        with urllib.request.urlopen(URL, timeout=60) as resp:
            blob = resp.read()
    except OSError as err:
        print(f"could not download MathJax {VERSION} from {URL}: {err}", file=sys.stderr)
        return 1
    digest = hashlib.sha256(blob).hexdigest()
    if digest != SHA256:
        print(f"MathJax tarball from {URL} has sha256 {digest}, expected {SHA256}", file=sys.stderr)
        return 1
    DEST.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DEST.parent) as tmp:
        staging = Path(tmp) / "mathjax"
        staging.mkdir()
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")
        es5 = Path(tmp) / "package" / "es5"
        for name in KEEP:
            src = es5 / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, staging / name)
        (staging / "VERSION").write_text(VERSION + "\n")
        if DEST.exists():
            shutil.rmtree(DEST)
        staging.rename(DEST)
    print(f"vendored MathJax {VERSION} into {DEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
