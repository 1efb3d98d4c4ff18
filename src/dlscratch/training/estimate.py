r"""What a training run will cost on a Colab T4, announced before it starts.

:func:`~dlscratch.training.loop.train` counts its first update (forward and backward) with
:class:`CountingMode`: the floating-point operations :math:`F` that
``torch.utils.flop_counter.FlopCounterMode`` attributes to the matrix products and convolutions,
and the number :math:`K` of operators dispatched, each of which is at least one kernel launch on
a GPU. A run of :math:`S` updates then takes about

.. math::

    t_\text{T4} \approx S \left( \frac{F}{u \, P} + K \, t_\text{launch} \right),

with the T4's peak :math:`P` (8.1 TFLOP/s in float32, 65 TFLOP/s in float16 on its tensor
cores), a utilisation :math:`u` of 40 % and :math:`t_\text{launch} = 10\,\mu\text{s}` per
operator. The first term dominates big models, the second the small ones of this book's CPU
presets, whose updates are too short to keep a GPU busy. It is an order-of-magnitude guide, not a
measurement: the first update of the chapter's own run is what is counted, and the book never
records the estimate as a result. Introduced in chapter 4, *MLP language model*, where the loop
first prints it.

**Metering a whole preset.** With ``DLSCRATCH_T4_METER`` set to a file, every run of
:func:`~dlscratch.training.loop.train` counts its first update, appends the
:class:`RunEstimate` of the whole run to that file (one JSON object per line) and stops after
that one update. ``bench/t4_presets.py`` runs each chapter that way under
``DLSCRATCH_PRESET=gpu`` on the CPU: the estimates of the training runs plus the time the rest of
the chapter took are how the ``gpu`` presets are checked against the five minutes a Colab
reader should wait. Never set it for a real run.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ..utils import preset_name

__all__ = ["T4_PEAK_FLOPS", "RunEstimate", "CountingMode", "t4_seconds", "should_announce", "meter_path", "record_estimate"]

# the T4's peak rate in FLOP/s: float32 on its CUDA cores, float16 on its tensor cores
T4_PEAK_FLOPS = {"fp32": 8.1e12, "fp16": 65e12}
_UTILISATION = 0.4  # the fraction of peak a well-fed training step reaches
_LAUNCH_SECONDS = 10e-6  # the cost of one dispatched operator (kernel launch and framework overhead)
_LAST_CELL: list[Any] = [None]  # the notebook cell that last announced a run
_METER_ENV = "DLSCRATCH_T4_METER"


def t4_seconds(flops_per_update: float, ops_per_update: int, updates: int, precision: str = "fp32") -> float:
    r"""The estimate :math:`S (F / (u P) + K t_\text{launch})` of a run on a T4, in seconds.

    Args:
        flops_per_update: :math:`F`, counted on one update.
        ops_per_update: :math:`K`, operators dispatched in one update.
        updates: :math:`S`.
        precision: ``"fp32"`` or ``"fp16"`` (mixed precision on the tensor cores).

    Raises:
        ValueError: if ``precision`` is neither, or a count is negative.
    """
    if precision not in T4_PEAK_FLOPS:
        raise ValueError(f"precision must be one of {sorted(T4_PEAK_FLOPS)}, got {precision!r}")
    if min(flops_per_update, ops_per_update, updates) < 0:
        raise ValueError(f"counts must be non-negative, got {flops_per_update=}, {ops_per_update=}, {updates=}")
    return updates * (flops_per_update / (_UTILISATION * T4_PEAK_FLOPS[precision]) + ops_per_update * _LAUNCH_SECONDS)


class CountingMode(TorchDispatchMode):
    r"""Counts the operators dispatched inside it, and their FLOPs through ``FlopCounterMode``.

    Use as ``with CountingMode() as c: ...``, then read ``c.ops`` and ``c.flops``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self._flops = FlopCounterMode(display=False)

    @property
    def flops(self) -> int:
        r"""FLOPs of the matrix products and convolutions run inside the mode."""
        return self._flops.get_total_flops()

    def __enter__(self) -> CountingMode:
        self._flops.__enter__()
        return super().__enter__()

    def __exit__(self, *args: Any) -> None:
        super().__exit__(*args)
        self._flops.__exit__(*args)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.ops += 1
        return func(*args, **(kwargs or {}))


def should_announce() -> bool:
    r"""Whether a run should print its estimate: once per notebook cell, never outside a notebook."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "execution_count"):
        return False
    cell = (id(shell), shell.execution_count)
    if _LAST_CELL[0] == cell:
        return False
    _LAST_CELL[0] = cell
    return True


def meter_path() -> Path | None:
    r"""The file named by ``DLSCRATCH_T4_METER``, or ``None`` when runs train normally."""
    value = os.environ.get(_METER_ENV, "").strip()
    return Path(value) if value else None


def record_estimate(estimate: RunEstimate, path: Path) -> None:
    r"""Append ``estimate`` (its fields and its T4 seconds) to ``path`` as one JSON line."""
    with path.open("a") as f:
        f.write(json.dumps({**asdict(estimate), "t4_seconds": estimate.seconds}) + "\n")


@dataclass(frozen=True)
class RunEstimate:
    r"""A run's counted cost and its T4 estimate (:func:`t4_seconds`)."""

    updates: int  # updates still to run
    flops_per_update: int  # F, counted on the first update
    ops_per_update: int  # K, operators dispatched in the first update
    mixed_precision: bool  # whether the run uses autocast (the T4's float16 tensor cores)

    @property
    def seconds(self) -> float:
        r"""The T4 estimate in seconds."""
        precision = "fp16" if self.mixed_precision else "fp32"
        return t4_seconds(self.flops_per_update, self.ops_per_update, self.updates, precision)

    def line(self, device: torch.device) -> str:
        r"""One line for the reader: preset, device, counted cost and the T4 estimate."""
        total = self.flops_per_update * self.updates
        return (
            f"preset {preset_name(device)} on {device.type}: {self.updates:,} updates x "
            f"{_si(self.flops_per_update)}FLOP and {self.ops_per_update:,} operators each = {_si(total)}FLOP; "
            f"a Colab T4 would take about {_duration(self.seconds)}"
        )


def _si(x: float) -> str:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g} {prefix}"
    return f"{x:.3g} "


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2g} s"
    return f"{seconds / 60:.2g} min"
