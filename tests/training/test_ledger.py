"""The results ledger: validation, serialisation and what the book build reads back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dlscratch.training import ledger
from dlscratch.training.ledger import MIME_TYPE, parse_output, record


def test_record_fields_and_target() -> None:
    r = record("demo.loss", torch.tensor(1.5), unit="nats", reference=1.4, source="paper", target=1.6,
               device="cpu", display=False)
    assert (r.key, r.value, r.reference, r.device, r.preset) == ("demo.loss", 1.5, 1.4, "cpu", "cpu")
    assert r.met_target is True
    up = record("demo.acc", 0.9, unit="accuracy", target=0.95, higher_is_better=True, display=False)
    assert up.met_target is False
    assert record("demo.x", 1, unit="x", display=False).met_target is None
    assert ledger.RESULTS[-3:] == [r, up, ledger.RESULTS[-1]]
    assert record("demo.alpha_N", 0.1, unit="exponent", display=False).key == "demo.alpha_N"  # a symbol's capital


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "NoDots"}, "'NoDots'"),
        ({"key": "Scaling.alpha_N"}, "lowercase topic"),
        ({"key": "a.b", "value": math.nan}, "finite"),
        ({"key": "a.b", "value": torch.ones(2)}, r"shape \(2,\)"),
        ({"key": "a.b", "value": "fast"}, "'fast'"),
        ({"key": "a.b", "reference": 2.0}, "no source"),
        ({"key": "a.b", "unit": ""}, "needs a unit"),
    ],
)
def test_bad_entries(kwargs: dict, message: str) -> None:
    args = {"value": 1.0, "unit": "nats", "display": False, **kwargs}
    key = args.pop("key")
    with pytest.raises(ValueError, match=message):
        record(key, **args)


def test_jsonl_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("DLSCRATCH_LEDGER", str(out))
    record("demo.a", 1.0, unit="s", display=False)
    record("demo.b", 2.0, unit="s", display=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["key"] for r in rows] == ["demo.a", "demo.b"] and rows[1]["value"] == 2.0


def test_notebook_output_round_trip() -> None:
    """What a chapter displays is what the build's extension reads back from the .ipynb."""
    r = record("demo.rt", 3.25, unit="x", reference=3.0, source="peer", higher_is_better=True, target=3.0,
               display=False)
    output = {"output_type": "display_data", "metadata": {},
              "data": {MIME_TYPE: r.to_json(), "text/plain": "demo.rt = 3.25 x"}}
    stored = json.loads(json.dumps(output))  # as written to disk
    assert parse_output(stored) == r.to_json()
    assert parse_output({"output_type": "stream", "text": "hi"}) is None


def test_display_inside_ipython(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[dict] = []
    import IPython
    import IPython.display

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw, metadata: shown.append({**obj, "metadata": metadata}))
    r = record("demo.shown", 2.0, unit="x", display=True)
    assert shown and shown[0][MIME_TYPE] == r.to_json()
    assert "demo.shown" in shown[0]["text/markdown"]
    assert shown[0]["metadata"]["scrapbook"]["name"] == "dlscratch_ledger__demo__shown"
