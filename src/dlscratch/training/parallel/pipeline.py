r"""GPipe pipeline parallelism: consecutive stages on consecutive ranks, the batch cut into micro-batches.

Rank :math:`r` holds stage :math:`r` of :math:`p`. A batch is cut into :math:`m` micro-batches;
every stage runs all :math:`m` forward passes (receiving each activation from the stage before,
sending its output to the stage after), then all :math:`m` backward passes in reverse, passing
gradients back, and the optimizer steps once (Huang et al. 2019). The gradients are those of
the whole batch. With equal stages of forward time :math:`t_f` and backward time :math:`t_b`, a
step lasts :math:`(m + p - 1)(t_f + t_b)`, of which each rank computes :math:`m (t_f + t_b)`; the
idle share, the *bubble*, is

.. math::

    \text{bubble} = \frac{p - 1}{m + p - 1} .

:func:`gpipe_step` runs one step and returns a timeline of its compute; :func:`bubble_fraction`
measures the idle share from the timelines of all ranks. Chapter 37, *Scaling out*.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["split_micro_batches", "gpipe_step", "bubble_fraction", "bubble_formula"]


def bubble_formula(stages: int, micro_batches: int) -> float:
    r"""GPipe's idle share :math:`(p - 1)/(m + p - 1)` for ``stages`` = :math:`p` and ``micro_batches`` = :math:`m`."""
    return (stages - 1) / (micro_batches + stages - 1)


def split_micro_batches(x: torch.Tensor, micro_batches: int) -> list[torch.Tensor]:
    r"""Cut ``x`` along dimension 0 into ``micro_batches`` equal parts; a ``ValueError`` when they cannot be equal."""
    if micro_batches < 1 or x.shape[0] % micro_batches:
        raise ValueError(f"{micro_batches} micro-batches do not divide the batch of {x.shape[0]} into equal parts")
    return list(x.chunk(micro_batches))


def gpipe_step(
    stage: nn.Module,
    micro_batches: int,
    *,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    act_shape: tuple[int, ...] | None = None,
) -> tuple[float, list[tuple[str, int, float, float, int]]]:
    r"""One GPipe forward-and-backward of this rank's ``stage``; the gradients land in its ``.grad``.

    The first rank passes the batch ``x``; the last passes the targets ``y`` and ``loss_fn``
    (a mean over a micro-batch: each is weighted :math:`1/m`, so the sum is the batch mean);
    the others pass neither. Every rank but the first passes ``act_shape``, the shape of one
    micro-batch's activation it receives.

    Returns:
        ``(loss, timeline)``: the batch loss on the last rank (0.0 elsewhere) and this rank's
        compute as ``(kind, micro_batch, start, end, slot)``: ``kind`` ``"F"`` or ``"B"``,
        ``time.perf_counter`` times (waiting for a neighbour is not included), and the op's slot
        on a logical clock where every op takes one slot and starts when its input is ready.
    """
    rank, p = dist.get_rank(), dist.get_world_size()
    first, last = rank == 0, rank == p - 1
    if first:
        inputs = split_micro_batches(x, micro_batches)
    if last:
        targets = split_micro_batches(y, micro_batches)
    timeline, sends, outs, ins, total = [], [], [], [], 0.0
    slot = 0  # a logical clock: every forward or backward takes one slot, and waits for its input's slot

    def recv(shape: tuple[int, ...], src: int) -> tuple[torch.Tensor, int]:
        t, ready = torch.empty(shape), torch.zeros(1, dtype=torch.long)
        dist.recv(t, src)
        dist.recv(ready, src)
        return t, int(ready)

    def send(t: torch.Tensor, dst: int, ready: int) -> None:
        sends.append(dist.isend(t.detach().contiguous(), dst))
        sends.append(dist.isend(torch.tensor([ready]), dst))

    for i in range(micro_batches):  # all forwards
        ready = 0
        if first:
            a = inputs[i]
        else:
            a, ready = recv(act_shape, rank - 1)
            a.requires_grad_(True)
        t0, slot = time.perf_counter(), max(slot, ready) + 1
        out = stage(a)
        if last:
            out = loss_fn(out, targets[i]) / micro_batches
            total += out.item()
        timeline.append(("F", i, t0, time.perf_counter(), slot - 1))
        if not last:
            send(out, rank + 1, slot)
        ins.append(a)
        outs.append(out)
    for i in reversed(range(micro_batches)):  # then all backwards, last micro-batch first
        grad, ready = None, 0
        if not last:
            grad, ready = recv(tuple(outs[i].shape), rank + 1)
        t0, slot = time.perf_counter(), max(slot, ready) + 1
        outs[i].backward(grad)
        timeline.append(("B", i, t0, time.perf_counter(), slot - 1))
        if not first:
            send(ins[i].grad, rank - 1, slot)
        outs[i] = ins[i] = None  # free this micro-batch's activations
    for s in sends:
        s.wait()
    return total, timeline


def bubble_fraction(timelines: list[list[tuple[str, int, float, float, int]]], clock: str = "wall") -> float:
    r"""The measured idle share, :math:`1 - \sum_r \text{busy}_r / (p \cdot \text{span})`, from all ranks' timelines.

    With ``clock="wall"``, ``span`` runs from the first compute on any rank to the last and
    ``busy`` sums a rank's forward and backward intervals (communication and waiting count as
    idle). With ``clock="slots"`` every op counts one slot: the schedule's own bubble, free of
    timing noise and of unequal forward and backward costs.
    """
    if clock not in ("wall", "slots"):
        raise ValueError(f"clock must be 'wall' or 'slots', got {clock!r}")
    if clock == "slots":
        span = max(e[4] for tl in timelines for e in tl) + 1
        return 1.0 - sum(len(tl) for tl in timelines) / (len(timelines) * span)
    start = min(e[2] for tl in timelines for e in tl)
    end = max(e[3] for tl in timelines for e in tl)
    busy = sum(e[3] - e[2] for tl in timelines for e in tl)
    return 1.0 - busy / (len(timelines) * (end - start))
