"""Benchmark: how long each chapter's ``gpu`` preset would take on a Colab T4, from counted FLOPs.

Prints a table; asserts nothing. Usage::

    python bench/t4_presets.py                       # every chapter with a preset
    python bench/t4_presets.py book/part4_transformer/ch17_gpt.md --json t4.json

Each chapter runs top to bottom on this machine's CPU with ``DLSCRATCH_PRESET=gpu`` (the preset a
Colab reader on a GPU runtime gets) and ``DLSCRATCH_T4_METER`` set
(:func:`dlscratch.training.estimate.meter_path`): every call of
:func:`dlscratch.training.loop.train` counts its first update (FLOPs of the matrix products and
convolutions, operators dispatched), records the estimate of its whole run on a T4,

    t = S * (F / (0.4 * P) + K * 10 us)      (P = 8.1 TFLOP/s fp32, 65 TFLOP/s fp16),

and stops after that update, so the chapter goes on with the rest. The chapter's estimate is the
sum of its training runs' estimates plus the seconds the rest of the chapter took here
(evaluation, sampling, and any loop that trains without ``train``, run in full at ``gpu``
size): a T4 does that rest no slower than two CPU cores do, so the sum errs on the long side.
A cell that needs the whole run (a curve of the losses, say) may fail; the cells after it still
run, and the row says how many failed.
Runs count as float32 unless they autocast, then as float16 on the T4's tensor cores. The target is five minutes per chapter (issue 10). A cell that runs past ``--timeout`` ends
the chapter's run, and the row says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbclient
import yaml
from nbclient.exceptions import CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 300.0  # five minutes on a T4


def chapters_with_presets() -> list[Path]:
    r"""The chapters of ``_toc.yml``, in order, whose source mentions ``pick_preset``."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [ROOT / f"{c['file']}.md" for part in toc["parts"] for c in part["chapters"]]
    return [f for f in files if re.search(r"\bpick_preset\(", f.read_text())]


def meter_chapter(chapter: Path, timeout: float) -> dict:
    r"""Run ``chapter`` metered under the ``gpu`` preset; its training estimates and the rest's seconds."""
    nb = jupytext.read(chapter)
    with tempfile.TemporaryDirectory() as tmp:
        meter = Path(tmp) / "meter.jsonl"
        os.environ.update(DLSCRATCH_PRESET="gpu", DLSCRATCH_T4_METER=str(meter))
        error = None
        start = time.perf_counter()
        try:  # a cell that needs the whole training run may fail; the cells after it still run
            nbclient.NotebookClient(nb, timeout=int(timeout), kernel_name="python3", allow_errors=True,
                                    resources={"metadata": {"path": str(chapter.parent)}}).execute()
        except CellTimeoutError:
            error = f"a cell ran past {timeout:.0f} s"
        except DeadKernelError as exc:
            error = f"the kernel died: {exc}"[:160]
        seconds = time.perf_counter() - start
        failed = [i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
        if failed and error is None:
            error = f"{len(failed)} cell(s) failed with the training cut short (first: cell {failed[0]})"
        runs = [json.loads(line) for line in meter.read_text().splitlines()] if meter.exists() else []
    train_s = sum(r["t4_seconds"] for r in runs)
    return {
        "chapter": chapter.stem,
        "runs": runs,
        "train_t4_s": train_s,
        "rest_cpu_s": seconds,
        "estimate_s": train_s + seconds,
        "error": error,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", type=Path, help="default: every chapter that calls pick_preset")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one cell may run (default 600)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    chapters = [c.resolve() for c in args.chapters] or chapters_with_presets()
    rows = []
    print(f"{'chapter':34s} {'runs':>4s} {'updates':>8s} {'train (T4)':>11s} {'rest (CPU)':>11s} {'total':>8s}  verdict")
    for chapter in chapters:
        row = meter_chapter(chapter, args.timeout)
        rows.append(row)
        updates = sum(r["updates"] for r in row["runs"])
        verdict = row["error"] or ("within 5 min" if row["estimate_s"] <= BUDGET_S else "OVER 5 min")
        print(
            f"{row['chapter']:34s} {len(row['runs']):4d} {updates:8,d} {row['train_t4_s']:10.0f}s "
            f"{row['rest_cpu_s']:10.0f}s {row['estimate_s']:7.0f}s  {verdict}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
