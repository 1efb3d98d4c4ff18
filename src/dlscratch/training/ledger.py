r"""The results ledger: every headline number a chapter measures, next to its reference.

A chapter calls :func:`record` once per headline number (a loss, an accuracy, a speed-up). The
call returns a :class:`Result` and, inside a notebook, displays it as a small table row and
attaches it to the cell's output under the MIME type :data:`MIME_TYPE` (tagged as a myst-nb
"glue" output). The book build reads those outputs from the executed (or cached) notebooks and turns them into the Results page and
``_build/results.json``, so a number can only appear in the ledger if a cell produced it.

Outside a notebook (scripts, the command line) the results are kept in :data:`RESULTS` and, when
the environment variable ``DLSCRATCH_LEDGER`` names a file, appended to it as JSON lines.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..utils import device as _default_device

__all__ = ["Result", "record", "RESULTS", "MIME_TYPE", "LEDGER_ENV", "GLUE_PREFIX", "glue_name", "parse_output"]

MIME_TYPE = "application/vnd.dlscratch.result+json"
LEDGER_ENV = "DLSCRATCH_LEDGER"
GLUE_PREFIX = "dlscratch_ledger__"
_KEY = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_]+)+$")  # capitals only for symbols after the topic: "scaling.alpha_N"

RESULTS: list["Result"] = []  # every result recorded in this process, in order


@dataclass(frozen=True)
class Result:
    r"""One measured headline number.

    Attributes:
        key: dotted, lowercase identifier such as ``"gpt.shakespeare.val_loss"``.
        value: the measured value.
        unit: what ``value`` counts (``"nats"``, ``"accuracy"``, ``"x"``, ``"s"``...).
        reference: the value reported by a paper or a peer implementation, if any.
        source: where ``reference`` comes from (citation or URL); empty without a reference.
        device: the device type the measurement ran on (``"cpu"``, ``"cuda"``).
        preset: the named configuration that produced it (``"cpu"``, ``"gpu"``, ...).
        target: the value this book aims for on this preset, if any.
        higher_is_better: direction used to compare ``value`` with ``target``.
    """

    key: str  # dotted identifier, e.g. "attention.sdpa.max_abs_diff"
    value: float  # what this run measured
    unit: str  # unit of value
    reference: float | None  # published / peer value
    source: str  # where the reference comes from
    device: str  # "cpu" or "cuda"
    preset: str  # configuration name
    target: float | None  # the book's goal on this preset
    higher_is_better: bool  # comparison direction for target

    @property
    def met_target(self) -> bool | None:
        r"""``True``/``False`` when a target is set, else ``None``."""
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def to_json(self) -> dict[str, Any]:
        r"""A JSON-ready dict of the fields, plus ``met_target``."""
        return {**asdict(self), "met_target": self.met_target}

    def _ipython_display_(self) -> None:
        r"""Display nothing: :func:`record` already showed the entry (once, with its metadata)."""

    def markdown(self) -> str:
        r"""A one-line Markdown summary, as shown in the chapter."""
        ref = "—" if self.reference is None else f"{self.reference:.6g}"
        tgt = "" if self.target is None else f" · target {'≥' if self.higher_is_better else '≤'} {self.target:.6g}"
        return (
            f"**Ledger** `{self.key}` = **{self.value:.6g}** {self.unit} "
            f"(reference {ref}{', ' + self.source if self.source else ''}{tgt}; "
            f"{self.device}, preset `{self.preset}`)"
        )


def _as_float(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{what} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    try:
        out = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be a number, got {value!r}") from err
    if not math.isfinite(out):
        raise ValueError(f"{what} must be finite, got {out}")
    return out


def record(
    key: str,
    value: float | torch.Tensor,
    *,
    unit: str,
    reference: float | None = None,
    source: str = "",
    preset: str = "cpu",
    device: str | torch.device | None = None,
    target: float | None = None,
    higher_is_better: bool = False,
    display: bool = True,
) -> Result:
    r"""Record a measured headline number in the ledger.

    Args:
        key: dotted identifier, as named in the chapter's issue: a lowercase topic, then lowercase
            words (capitals only for a symbol's subscript, as in ``"scaling.alpha_N"``).
        value: the measured number (a Python number or a one-element tensor).
        unit: unit of ``value``.
        reference: published or peer value to compare against.
        source: citation for ``reference``; required when ``reference`` is given.
        preset: name of the configuration that produced ``value``.
        device: device the measurement ran on; :func:`dlscratch.utils.device` when omitted.
        target: the value this book aims for on ``preset``.
        higher_is_better: whether larger values are better (accuracies, speed-ups).
        display: show the result in the notebook (and attach it for the book build).

    Returns:
        The recorded :class:`Result`.

    Raises:
        ValueError: on a malformed key, a non-finite value, or a reference without a source.
    """
    if not _KEY.match(key):
        raise ValueError(f"ledger key must be dotted like 'gpt.shakespeare.val_loss' (lowercase topic), got {key!r}")
    if not unit:
        raise ValueError(f"ledger entry {key!r} needs a unit")
    ref = None if reference is None else _as_float(reference, f"reference of {key!r}")
    if ref is not None and not source:
        raise ValueError(f"ledger entry {key!r} has a reference ({ref}) but no source")
    dev = torch.device(device) if device is not None else _default_device()
    result = Result(
        key=key,
        value=_as_float(value, f"value of {key!r}"),
        unit=unit,
        reference=ref,
        source=source,
        device=dev.type,
        preset=preset,
        target=None if target is None else _as_float(target, f"target of {key!r}"),
        higher_is_better=higher_is_better,
    )
    RESULTS.append(result)
    path = os.environ.get(LEDGER_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(result.to_json()) + "\n")
    if display:
        _display(result)
    return result


def _display(result: Result) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: nothing to show
        return
    if get_ipython() is None:
        return
    display(
        {
            MIME_TYPE: result.to_json(),
            "text/markdown": result.markdown(),
            "text/plain": f"{result.key} = {result.value:.6g} {result.unit}",
        },
        raw=True,
        # myst-nb "glue" metadata: the book build finds the entry in the executed notebook,
        # including when the notebook is restored from the execution cache
        metadata={"scrapbook": {"name": glue_name(result.key), "mime_prefix": ""}},
    )


def glue_name(key: str) -> str:
    r"""The myst-nb glue name under which the entry ``key`` is attached to its cell output."""
    return GLUE_PREFIX + key.replace(".", "__")


def parse_output(output: dict[str, Any]) -> dict[str, Any] | None:
    r"""Extract a ledger entry from one notebook output (as stored in an ``.ipynb``), if any."""
    data = output.get("data") or {}
    entry = data.get(MIME_TYPE)
    if entry is None:
        return None
    if isinstance(entry, str):  # some writers store JSON MIME types as text
        entry = json.loads(entry)
    return dict(entry)
