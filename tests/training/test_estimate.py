import json
import sys
import types

import pytest
import torch

from dlscratch.training import estimate
from dlscratch.training.estimate import T4_PEAK_FLOPS, CountingMode, RunEstimate, should_announce, t4_seconds
from dlscratch.training.loop import train


def test_counting_mode_counts_matmul_flops_and_operators():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    with CountingMode() as c:
        (a @ b).relu().sum()
    assert c.flops == 2 * 8 * 16 * 4
    assert c.ops >= 3


def test_t4_seconds_is_the_formula():
    got = t4_seconds(1e12, 100, 10, "fp16")
    assert got == pytest.approx(10 * (1e12 / (0.4 * T4_PEAK_FLOPS["fp16"]) + 100 * 10e-6))
    with pytest.raises(ValueError, match="precision must be one of .* got 'bf16'"):
        t4_seconds(1.0, 1, 1, "bf16")


class FakeShell:
    execution_count = 1


@pytest.fixture
def fake_notebook(monkeypatch: pytest.MonkeyPatch) -> FakeShell:
    shell = FakeShell()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setattr(estimate, "_LAST_CELL", [None])
    return shell


def test_announce_once_per_cell_and_never_outside_a_notebook(fake_notebook: FakeShell, monkeypatch: pytest.MonkeyPatch):
    assert should_announce() and not should_announce()
    fake_notebook.execution_count = 2
    assert should_announce()
    monkeypatch.setitem(sys.modules, "IPython", None)
    assert not should_announce()


def test_train_prints_the_counted_first_update(fake_notebook: FakeShell, capsys: pytest.CaptureFixture[str]):
    model = torch.nn.Linear(5, 3)
    batches = [(torch.randn(4, 5), torch.randint(0, 3, (4,)))] * 3
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train(model, batches, opt, steps=3, progress=False)
    train(model, batches, opt, steps=3, progress=False)  # same cell: quiet
    out = capsys.readouterr().out
    flops = 2 * (2 * 4 * 5 * 3)  # the forward product and the weight-gradient one (the input needs no gradient)
    assert out.count("\n") == 1 and f"3 updates x {flops} FLOP" in out and f"= {3 * flops} FLOP" in out
    assert RunEstimate(3, flops, 10, False).seconds == pytest.approx(t4_seconds(flops, 10, 3))


def test_meter_records_the_whole_run_and_stops_after_its_first_update(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys):
    meter = tmp_path / "meter.jsonl"
    monkeypatch.setenv("DLSCRATCH_T4_METER", str(meter))
    model = torch.nn.Linear(5, 3)
    batches = [(torch.randn(4, 5), torch.randint(0, 3, (4,)))] * 10
    state = train(model, batches, torch.optim.SGD(model.parameters(), lr=0.1), steps=10, start_step=2, progress=False)
    assert state.step == 3 and len(state.losses) == 1  # one update ran
    (row,) = [json.loads(line) for line in meter.read_text().splitlines()]
    flops = 2 * (2 * 4 * 5 * 3)
    assert row["updates"] == 8 and row["flops_per_update"] == flops and row["mixed_precision"] is False
    assert row["t4_seconds"] == pytest.approx(t4_seconds(flops, row["ops_per_update"], 8))
    assert capsys.readouterr().out == ""  # outside a notebook nothing is printed
    monkeypatch.delenv("DLSCRATCH_T4_METER")
    assert train(model, batches, torch.optim.SGD(model.parameters(), lr=0.1), steps=10, progress=False).step == 10
