"""Checks on the built website, run after ``make book`` (``make check-site``).

1. **Colab links.** Every chapter page has a Colab button, and every Colab href in the built HTML
   points (through the repository URL and branch of ``_config.yml``) at an exported notebook that
   exists next to its chapter and is a valid notebook.
2. **Simulated Colab.** Exported notebooks run top to bottom in a fresh virtual environment
   that has what Colab preinstalls (PyTorch, Jupyter, scikit-learn, pandas, transformers) but not
   ``dlscratch``: chapter 1, chapter 21 and the chapter this build executed slowest by default,
   every chapter with ``--colab-all`` (``make check-colab``). A stub ``google.colab`` module is imported
   at start-up, as in Colab, so the notebook's first cell installs the package; git is told to
   fetch the repository URL from this checkout's committed HEAD, so nothing but that cell provides
   ``dlscratch``.
3. **Downloads.** The executed notebook each page offers for download prints a cell's text once
   (see ``tools/dlscratch_streams.py``).
4. **Rendering.** Headless Chromium loads every chapter page from a local server and the DOM it
   produces must contain MathJax output, and every figure the page shows must exist and be
   opaque (the book's white card, readable on the light and the dark theme alike).

Usage: ``python tools/check_site.py [--skip-colab-run | --colab-all] [--skip-browser]``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booktools import ROOT, chapter_paths, colab_branch, repo_url  # noqa: E402

HTML = ROOT / "_build" / "html"
# the notebooks CI runs in the simulated Colab: the first chapter, LLaMA (training, transformers,
# the Hugging Face export) and the chapter this build executed slowest (heaviest_chapter)
SIM_NOTEBOOKS = ["book/part1_foundations/ch01_pytorch_essentials.ipynb", "book/part5_modern/ch21_llama.ipynb"]
# what the simulated Colab runtime has preinstalled (Colab ships these; dlscratch it does not)
SIM_PACKAGES = ["torch==2.13.0", "numpy", "matplotlib", "tqdm", "ipykernel", "nbclient", "nbformat", "pyyaml",
                "scikit-learn", "pandas", "transformers==5.23.0"]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"] or "")
        if tag == "img" and a.get("src"):
            self.imgs.append(a["src"] or "")


def _page(doc: Path) -> Path:
    return HTML / doc.relative_to(ROOT).with_suffix(".html")


def check_colab_links() -> list[str]:
    errors: list[str] = []
    owner_repo = urlparse(repo_url()).path.strip("/")
    prefix = f"https://colab.research.google.com/github/{owner_repo}/blob/{colab_branch()}/"
    chapters = {_page(p) for p in chapter_paths()}
    n_links = 0
    for page in sorted(HTML.rglob("*.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        colab = [h for h in parser.hrefs if "colab.research.google.com" in h]
        if page in chapters and not colab:
            errors.append(f"{page.relative_to(ROOT)}: chapter page without a Colab button")
        for href in colab:
            n_links += 1
            if not href.startswith(prefix):
                errors.append(f"{page.relative_to(ROOT)}: Colab link {href} does not start with {prefix}")
                continue
            target = ROOT / unquote(href[len(prefix) :])
            if target.suffix != ".ipynb" or not target.is_file():
                errors.append(f"{page.relative_to(ROOT)}: Colab link {href} has no exported notebook {target}")
                continue
            nbformat.validate(nbformat.read(target, as_version=4))
    print(f"colab links: {n_links} checked on {len(chapters)} chapter pages")
    return errors


def simulate_colab(notebook: str) -> list[str]:
    """Run one exported notebook in a fresh venv where only its install cell provides dlscratch."""
    if subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "pyproject.toml"],
                      capture_output=True, text=True, check=True).stdout.strip():
        print("note: src/ or pyproject.toml has uncommitted changes; the simulated Colab installs HEAD")
    sim = ROOT / "_build" / "colab-sim"
    venv = sim / "venv"
    py = venv / "bin" / "python"
    if not (venv / ".ready").is_file():
        shutil.rmtree(sim, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", *SIM_PACKAGES], check=True)
        (venv / ".ready").touch()
    # start from a venv without dlscratch, every time
    subprocess.run([str(py), "-m", "pip", "uninstall", "--quiet", "--yes", "dlscratch"], capture_output=True)
    stub = sim / "stub"
    shutil.rmtree(stub, ignore_errors=True)
    (stub / "google" / "colab").mkdir(parents=True)
    (stub / "google" / "__init__.py").write_text("")
    (stub / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s runtime module."""\n')
    (stub / "sitecustomize.py").write_text("import google.colab  # Colab imports it before any cell runs\n")
    gitconfig = sim / "gitconfig"
    gitconfig.write_text(f'[url "file://{ROOT}"]\n\tinsteadOf = {repo_url()}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "DLSCRATCH_BOOK"))}
    env.update(
        PATH=f"{venv / 'bin'}:{env.get('PATH', '')}",
        PYTHONPATH=str(stub),
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        MPLBACKEND="agg",
    )
    probe = subprocess.run([str(py), "-c", "import dlscratch"], env=env, capture_output=True)
    if probe.returncode == 0:
        return ["simulated Colab: dlscratch is importable before the notebook's install cell ran"]
    runner = (
        "import sys, nbformat, nbclient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "nbclient.NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
        "print(f'executed {len(nb.cells)} cells')\n"
    )
    workdir = Path(tempfile.mkdtemp(prefix="colab-sim-"))  # like /content: not the checkout
    start = time.perf_counter()
    run = subprocess.run([str(py), "-c", runner, str(ROOT / notebook), str(workdir)], env=env,
                         capture_output=True, text=True)
    secs = time.perf_counter() - start
    if run.returncode != 0:
        return [f"simulated Colab run of {notebook} failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"]
    where = subprocess.run([str(py), "-c", "import dlscratch; print(dlscratch.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not where.startswith(str(venv)):
        return [f"simulated Colab: dlscratch was imported from {where}, not from the notebook's install"]
    print(f"simulated colab: {notebook} ran in {secs:.0f} s; dlscratch installed by its first cell at {where}")
    return []


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def check_rendering() -> list[str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        return ["chromium not found (Debian: apt-get install chromium)"]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(HTML)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    errors: list[str] = []
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        for doc in chapter_paths():
            page = _page(doc)
            url = f"http://127.0.0.1:{port}/{page.relative_to(HTML).as_posix()}"
            dom = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom", url],
                capture_output=True, text=True, timeout=180,
            ).stdout
            n_math = len(re.findall(r"<mjx-container", dom))
            parser = _Links()
            parser.feed(dom)
            figures = [s for s in parser.imgs if "_images/" in s]
            missing = [s for s in figures if not (page.parent / unquote(s)).resolve().is_file()]
            print(f"rendered {page.relative_to(HTML)}: {n_math} MathJax elements, {len(figures)} figures")
            if n_math == 0:
                errors.append(f"{url}: no MathJax output in the rendered page")
            if not figures:
                errors.append(f"{url}: no figure in the rendered page")
            errors += [f"{url}: figure {s} does not exist" for s in missing]
            errors += [f"{url}: figure {s} {problem}" for s in figures if s not in missing
                       for problem in [_figure_problem((page.parent / unquote(s)).resolve())] if problem]
    finally:
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    return errors


def _figure_problem(path: Path) -> str | None:
    """Why a figure would not read on both themes: a transparent pixel lets the page show through.

    The book's style draws every figure on an opaque white card with dark ink, so it reads the
    same on the light and the dark theme; a PNG with any transparency breaks that promise.
    """
    if path.suffix.lower() != ".png":
        return None
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    if img.ndim == 3 and img.shape[2] == 4 and float(img[..., 3].min()) < 1.0:
        return "has transparent pixels: on the dark theme its dark ink would sit on a dark page"
    return None


def check_downloads() -> list[str]:
    """Each page's downloadable executed notebook shows a cell's printed text once, as the page does."""
    errors = []
    for md in chapter_paths():
        rel = md.relative_to(ROOT).with_suffix(".ipynb")
        path = ROOT / "_build" / "jupyter_execute" / rel
        if not path.is_file():
            errors.append(f"{rel}: no executed notebook in _build/jupyter_execute")
            continue
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            names = [o.name for o in cell.get("outputs", []) if o.output_type == "stream"]
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                errors.append(f"{rel}: cell {i} has {len(names)} stream outputs ({', '.join(repeated)} repeated); "
                              "the downloaded notebook would print lines twice")
    return errors


def heaviest_chapter() -> str | None:
    r"""The exported notebook of the chapter that took longest to execute in this build.

    Reads the seconds that ``_build/results.json`` records per chapter (what
    ``tools/report_build.py`` prints); ``None`` when the build recorded none.
    """
    path = ROOT / "_build" / "results.json"
    if not path.is_file():
        return None
    seconds = json.loads(path.read_text(encoding="utf-8")).get("chapters", {})
    docs = {str(p.relative_to(ROOT).with_suffix("")) for p in chapter_paths()}
    timed = [(float(info["seconds"]), doc) for doc, info in seconds.items() if doc in docs and info.get("seconds") is not None]
    return f"{max(timed)[1]}.ipynb" if timed else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="checks on the built site")
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--skip-colab-run", action="store_true")
    runs.add_argument("--colab-all", action="store_true", help="run every chapter in the simulated Colab")
    parser.add_argument("--skip-browser", action="store_true")
    args = parser.parse_args(argv)
    if not HTML.is_dir():
        print(f"{HTML} does not exist: run `make book` first", file=sys.stderr)
        return 1
    errors = check_colab_links() + check_downloads()
    if not args.skip_browser:
        errors += check_rendering()
    if not args.skip_colab_run:
        if args.colab_all:
            notebooks = [str(p.relative_to(ROOT).with_suffix(".ipynb")) for p in chapter_paths()]
        else:
            notebooks = list(dict.fromkeys([*SIM_NOTEBOOKS, heaviest_chapter() or SIM_NOTEBOOKS[-1]]))
        for notebook in notebooks:
            errors += simulate_colab(notebook)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    print("site checks:", "FAILED" if errors else "all passed")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
