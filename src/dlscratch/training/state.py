r"""The state of a training run, shared by :func:`~dlscratch.training.loop.train` and its callbacks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["TrainState", "synchronize"]


def synchronize(device: torch.device) -> None:
    r"""Wait for the device's queued work (CUDA runs asynchronously), so that a clock reads true time."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class TrainState:
    r"""What :func:`train` knows about the run, shared with its callbacks."""

    model: Any  # the model being trained
    optimizer: torch.optim.Optimizer  # its optimizer
    step: int  # completed optimizer updates (the next update is number ``step``, 0-based)
    steps: int  # the update after which the run ends
    losses: list[torch.Tensor] = field(default_factory=list)  # detached loss of each update of this call, on the device
    lrs: list[float] = field(default_factory=list)  # learning rate (first group) of each update of this call
    metrics: dict[str, float] = field(default_factory=dict)  # latest values set by callbacks (shown by the progress bar)
    stop: bool = False  # set by a callback to end the run after this update
    seconds: float = 0.0  # wall-clock time of the loop, device synchronised
    untimed_seconds: float = 0.0  # time spent in :meth:`untimed` blocks (evaluation, checkpoints)
    started: float | None = None  # time.perf_counter() when the loop began (set by train)
    device: torch.device = torch.device("cpu")  # where the parameters live

    @property
    def train_seconds(self) -> float:
        r"""Seconds spent training: the loop's time less evaluation and checkpoints."""
        return self.seconds - self.untimed_seconds

    def train_seconds_so_far(self) -> float:
        r"""Seconds spent training since the loop began, device synchronised (0 before it began)."""
        if self.started is None:
            return 0.0
        synchronize(self.device)
        return time.perf_counter() - self.started - self.untimed_seconds

    @property
    def train_loss(self) -> list[float]:
        r"""The loss of every update of this call, as floats (one device sync)."""
        return torch.stack(self.losses).tolist() if self.losses else []

    @contextlib.contextmanager
    def untimed(self) -> Iterator[None]:
        r"""A block whose time (device synchronised) is not counted in :attr:`train_seconds`."""
        synchronize(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.untimed_seconds += time.perf_counter() - t0
