r"""Callbacks of :func:`~dlscratch.training.loop.train`: a progress bar, and periodic evaluation
with best-weights tracking and early stopping.

A callback is any object with ``on_step(state)`` (after every update) and ``on_end(state)`` (once,
after the last); :class:`Callback` provides both as no-ops. Checkpoints are written from an
:class:`Evaluate`'s ``on_eval`` hook (see :mod:`dlscratch.cli.lm`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .state import TrainState

__all__ = ["Callback", "ProgressBar", "Evaluate"]


class Callback:
    r"""Base class: override :meth:`on_step` and/or :meth:`on_end`."""

    def on_step(self, state: TrainState) -> None:
        r"""Called after every update (``state.step`` updates done)."""

    def on_end(self, state: TrainState) -> None:
        r"""Called once when the run ends."""


class ProgressBar(Callback):
    r"""A ``tqdm`` bar over the run's updates, showing ``state.metrics``. :func:`train` adds it itself."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.shown: dict[str, float] = {}

    def on_step(self, state: TrainState) -> None:
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.steps, initial=state.step - 1, desc="training", unit="step", mininterval=1.0)
        self.bar.update(1)
        if state.metrics != self.shown:
            self.shown = dict(state.metrics)
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in self.shown.items()})

    def on_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()


class Evaluate(Callback):
    r"""Evaluate every ``every`` updates and after the last; keep the best; stop early.

    After update :math:`s` with :math:`s \bmod` ``every`` :math:`= 0` (or :math:`s` = ``steps``),
    ``metrics = evaluate(model)`` runs untimed (:meth:`TrainState.untimed`), the model goes back
    to ``train()`` mode, ``on_eval(state, metrics)`` is called, and ``metrics[monitor]`` is
    compared with the best so far (lowest for ``mode="min"``; only a strict improvement counts,
    so ties keep the earlier evaluation). When ``patience`` evaluations pass without one, the run
    stops. With ``keep_best`` the model ends with the weights (and buffers) of the best
    evaluation. With ``stop_at`` the run stops at the first evaluation whose monitored value
    reaches it (:math:`\ge` for ``"max"``, :math:`\le` for ``"min"``), so ``seconds[-1]``
    is the training time needed to reach a target (chapter 16 races a Transformer against an RNN
    this way).

    Args:
        every: updates between evaluations (0: only after the last).
        evaluate: ``model -> {name: value}``.
        monitor: the key of ``metrics`` that decides which evaluation is best.
        mode: ``"min"`` or ``"max"``.
        patience: evaluations without improvement before stopping; ``None`` never stops.
        keep_best: restore the best evaluation's weights at the end.
        on_eval: called after each evaluation, e.g. to write a checkpoint.
        stop_at: a target value of ``monitor``; reaching it ends the run (``None``: never).
    """

    def __init__(
        self,
        every: int,
        evaluate: Callable[[Any], dict[str, float]],
        monitor: str,
        mode: str = "min",
        patience: int | None = None,
        keep_best: bool = False,
        on_eval: Callable[[TrainState, dict[str, float]], None] | None = None,
        stop_at: float | None = None,
    ) -> None:
        if every < 0 or mode not in ("min", "max") or (patience is not None and patience < 1):
            raise ValueError(f"need every >= 0, mode 'min' or 'max', patience None or >= 1; got {every=}, {mode=}, {patience=}")
        self.every, self.evaluate, self.monitor, self.mode = every, evaluate, monitor, mode
        self.patience, self.keep_best, self.on_eval, self.stop_at = patience, keep_best, on_eval, stop_at
        self.steps: list[int] = []  # completed updates at each evaluation
        self.seconds: list[float] = []  # training seconds (evaluations excluded) at each evaluation
        self.reached = False  # whether the monitored value reached ``stop_at``
        self.results: list[dict[str, float]] = []  # the metrics of each evaluation
        self.best: int = -1  # index into results of the best evaluation (-1: none yet)
        self.stopped_early = False  # whether patience ran out before the last update
        self._best_state: dict[str, torch.Tensor] | None = None

    def _better(self, value: float) -> bool:
        if self.best < 0:
            return True
        best = self.results[self.best][self.monitor]
        return value < best if self.mode == "min" else value > best

    def on_step(self, state: TrainState) -> None:
        if not (state.step == state.steps or (self.every > 0 and state.step % self.every == 0)):
            return
        self.seconds.append(state.train_seconds_so_far())
        with state.untimed():
            metrics = dict(self.evaluate(state.model))
        if hasattr(state.model, "train"):
            state.model.train()
        self.steps.append(state.step)
        self.results.append(metrics)
        state.metrics.update(metrics)
        if self._better(metrics[self.monitor]):
            self.best = len(self.results) - 1
            if self.keep_best:
                self._best_state = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        elif self.patience is not None and len(self.results) - 1 - self.best >= self.patience:
            state.stop = True
            self.stopped_early = state.step < state.steps
        if self.stop_at is not None:
            value = metrics[self.monitor]
            if (value >= self.stop_at) if self.mode == "max" else (value <= self.stop_at):
                self.reached = state.stop = True
        if self.on_eval is not None:
            self.on_eval(state, metrics)

    def on_end(self, state: TrainState) -> None:
        if self._best_state is not None:
            state.model.load_state_dict(self._best_state)

    def values(self, name: str) -> list[float]:
        r"""The history of one metric, one value per evaluation."""
        return [r[name] for r in self.results]
